"""The library model format: a directory holding ``card.json`` and ``weights.safetensors``.

``card.json`` says what the model is (name, property and units, task, modality, source dataset
with the sha256 of the exact rows and targets used, descriptor preset, architecture, training
settings and seed, hold-out metrics, licence and citation) and records the sha256 of the weights
file. Loading checks, in order: the card is JSON (never a pickle), its schema is one this version
reads, the class is a known one, the preset exists and yields the recorded feature names, the
weights' sha256 matches, and every tensor has the shape the architecture needs. Any failure
raises :class:`matxfer.ModelFormatError` naming the file and the reason; nothing is executed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _safeio
from ..exceptions import (
    ArgumentTypeError,
    FeaturizationError,
    FormulaError,
    InvalidArgumentError,
    ModelFormatError,
)
from ._numpy_mlp import BLOCK, NumpyMLP

__all__ = ["CARD_SCHEMA", "LibraryModel", "load_model_dir", "save_mlp", "feature_names_sha256", "rows_sha256"]

#: Card schema this version writes; loading accepts exactly the schemas in ``READABLE_SCHEMAS``.
CARD_SCHEMA = "matxfer.model-card/1"
READABLE_SCHEMAS = (CARD_SCHEMA,)
CARD_FILE, WEIGHTS_FILE = "card.json", "weights.safetensors"
KNOWN_CLASSES = ("MLP", "CGCNN")
TASKS = ("regression", "classification")
MODALITIES = ("composition", "structure", "molecule")
_REQUIRED = ("schema", "name", "class", "task", "modality", "property", "source", "descriptor", "architecture", "weights")


def feature_names_sha256(preset: str) -> str:
    """Fingerprint of a preset's feature names, in order: a model only sees the columns it was trained on."""
    from ..featurize import feature_names

    return hashlib.sha256("\n".join(feature_names(preset)).encode()).hexdigest()


def rows_sha256(formulas: Sequence[str], y: np.ndarray) -> str:
    """sha256 of the exact training rows: formulas joined by newlines, then the targets as float64 bytes."""
    h = hashlib.sha256("\n".join(map(str, formulas)).encode("utf-8"))
    h.update(np.ascontiguousarray(np.asarray(y, dtype=np.float64)).tobytes())
    return h.hexdigest()


def validate_card(card: Any, path: Path) -> Dict[str, Any]:
    if not isinstance(card, dict):
        raise ModelFormatError(path, "card is not a JSON object")
    schema = card.get("schema")
    if schema not in READABLE_SCHEMAS:
        raise ModelFormatError(
            path, f"card schema {schema!r} is not readable by this matxfer (reads {', '.join(READABLE_SCHEMAS)}); "
            "rebuild the model with `matxfer library build` or upgrade matxfer"
        )
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise ModelFormatError(path, f"card lacks {missing}")
    if card["class"] not in KNOWN_CLASSES:
        raise ModelFormatError(path, f"unknown model class {card['class']!r} (known: {', '.join(KNOWN_CLASSES)})")
    if card["task"] not in TASKS:
        raise ModelFormatError(path, f"unknown task {card['task']!r}")
    if card["modality"] not in MODALITIES:
        raise ModelFormatError(path, f"unknown modality {card['modality']!r}")
    expected_class = "CGCNN" if card["modality"] == "structure" else "MLP"
    if card["class"] != expected_class:
        raise ModelFormatError(path, f"a {card['modality']} model must be class {expected_class!r}, got {card['class']!r}")
    return card


def positive_chunk_size(chunk_size: Any) -> int:
    """``chunk_size`` as an int, refused unless it is a positive integer (bool is not)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


class LibraryModel:
    """A loaded library model: ``predict(formulas)`` featurizes with the model's own preset in
    chunks (Rust, GIL released) and evaluates the network in numpy (torch is not needed).

    ``card`` is the parsed card; ``name``, ``preset``, ``task`` and ``expected_error`` come from it.
    """

    def __init__(self, card: Dict[str, Any], state: Dict[str, np.ndarray], path: Optional[Path] = None) -> None:
        self.card = card
        self.path = path
        self.network = NumpyMLP(card["architecture"]["init_args"], state)
        self._state = state

    #: chunks go to parallel workers (False: one chunk after another, each featurized with
    #: ``n_threads``; molecule models, whose featurization has its own process pool)
    _chunk_workers = True

    name = property(lambda self: self.card["name"])
    preset = property(lambda self: self.card["descriptor"]["preset"])
    task = property(lambda self: self.card["task"])

    @property
    def expected_error(self) -> Optional[float]:
        """The hold-out mean absolute error from the card (regression), else None."""
        metrics = self.card.get("metrics") or {}
        return metrics.get("mae")

    def __repr__(self) -> str:
        p = self.card["property"]
        return f"LibraryModel({self.name!r}, property={p.get('name')!r} [{p.get('units', '')}], task={self.task!r})"

    # -- inputs ------------------------------------------------------------------------------------
    def featurize(self, formulas: Any, n_threads: Optional[int] = None, errors: str = "raise") -> np.ndarray:
        from ..featurize import featurize

        return featurize(formulas, self.preset, errors=errors, n_threads=n_threads, dtype=np.float32).values

    def _descriptors(self, inputs: Any, n_threads: Optional[int]) -> np.ndarray:
        if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.dtype.kind == "f":
            if inputs.shape[1] != self.network.n_in:
                raise ValueError(f"{self.name} expects {self.network.n_in} descriptor columns ({self.preset}), got {inputs.shape[1]}")
            return inputs
        return self.featurize(inputs, n_threads=n_threads)

    def _map_chunks(self, inputs: Any, fn, chunk_size: int, n_threads: Optional[int]):
        """Apply ``fn`` to the descriptors of consecutive chunks, in order.

        ``n_threads`` workers (default: ``MATXFER_NUM_THREADS`` or every core) each take whole
        chunks: featurize (Rust, one thread, GIL released), then evaluate the network (numpy,
        BLAS limited to one thread, GIL released in the GEMMs and ufuncs). Chunk starts stay on
        multiples of the network block, so results are bit-identical for any chunk size and
        thread count."""
        workers = _thread_count(n_threads) if self._chunk_workers else 1
        chunk = _round_up(positive_chunk_size(chunk_size), BLOCK)
        if isinstance(inputs, (str, os.PathLike)):
            # one formula (as featurize takes it); a molecule model reads a SMILES or an SDF path whole
            inputs = [inputs] if self._chunk_workers else self.featurize(inputs, n_threads=n_threads)
        if isinstance(inputs, np.ndarray) and inputs.ndim == 2:
            seq: Any = self._descriptors(inputs, n_threads)
            featurized = True
        else:
            seq, featurized = _as_sequence(inputs), False
        n = len(seq)
        # enough chunks to keep every worker busy
        chunk = min(chunk, max(BLOCK, _round_up(-(-n // workers), BLOCK)))
        starts = list(range(0, n, chunk)) or [0]
        parallel = workers > 1 and len(starts) > 1
        feat_threads = 1 if parallel else n_threads

        def work(start: int):
            part = seq[start : start + chunk]
            if featurized:
                return fn(part)
            try:
                X = self._descriptors(part, feat_threads)
            except (FormulaError, FeaturizationError) as err:
                raise _shift_row(err, start) from None
            return fn(X)

        with _single_thread_blas():
            if not parallel:
                return [work(s) for s in starts]
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
                return list(pool.map(work, starts))

    # -- outputs -----------------------------------------------------------------------------------
    def predict(
        self, inputs: Any, chunk_size: int = 16384, n_threads: Optional[int] = None, return_error: bool = False
    ) -> Union[np.ndarray, Tuple[np.ndarray, Optional[float]]]:
        """Predictions (float64) for formulas (anything ``featurize`` takes) or a descriptor array.

        Regression: the property in the card's units. Classification: the probability of the
        positive class (``card["property"]["positive"]``). ``return_error=True`` also returns
        the card's hold-out MAE (regression) as the expected error.
        """

        def run(X):
            out = self.network.raw_output(X)[:, 0]
            if self.task == "classification":
                out = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
            return out

        pred = np.concatenate(self._map_chunks(inputs, run, chunk_size, n_threads)).astype(np.float64)
        return (pred, self.expected_error) if return_error else pred

    def transform(self, inputs: Any, layers: Union[str, Sequence[int]] = "all", include_prediction: bool = True,
                  chunk_size: int = 16384, n_threads: Optional[int] = None) -> np.ndarray:
        """Frozen features: hidden activations (float32) of the chosen layers, plus the raw output."""
        n_layers = len(self.network.layers)
        chosen = list(range(n_layers)) if layers == "all" else [n_layers - 1] if layers == "last" else [i % n_layers for i in layers]

        def block(X):
            states = self.network.hidden_states(X)
            parts = [states[i] for i in chosen]
            if include_prediction:
                h = states[-1]
                parts.append((h @ self.network.head_w + self.network.head_b) * self.network.y_std + self.network.y_mean)
            return np.concatenate(parts, axis=1)

        def run(X):
            # whole blocks of BLOCK rows (the last one padded), as in predict: the bits of a row do
            # not depend on the chunking
            X = np.asarray(X, dtype=np.float32)
            n = len(X)
            padded = np.zeros((_round_up(max(n, 1), BLOCK), X.shape[1]), np.float32)
            padded[:n] = X
            return np.concatenate([block(padded[i : i + BLOCK]) for i in range(0, len(padded), BLOCK)])[:n]

        return np.concatenate(self._map_chunks(inputs, run, chunk_size, n_threads))

    def to_torch(self):
        """The same network as a :class:`matxfer.nn.MLP` (needs torch), e.g. to hand to a transfer strategy."""
        try:
            import torch
        except ImportError:
            raise ImportError('converting a library model to torch needs PyTorch: pip install "matxfer[torch]"') from None
        from ..nn import MLP

        model = MLP(**self.card["architecture"]["init_args"])
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self._state.items()})
        model.task = self.task  # a plain attribute: transfer strategies read it to treat a classifier's output as a logit
        return model.eval()


def _shift_row(err: Exception, offset: int) -> Exception:
    """The same error with the row index of the whole input, not of the chunk."""
    index = getattr(err, "index", None)
    if not offset or not isinstance(index, int):
        return err
    message = str(err)
    prefix = f"row {index}"
    if message.startswith(prefix):
        message = f"row {index + offset}" + message[len(prefix):]
    shifted = type(err)(message)
    shifted.__dict__.update(err.__dict__)
    shifted.index = index + offset  # type: ignore[attr-defined]
    return shifted


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _thread_count(n_threads: Optional[int]) -> int:
    """Workers for one prediction: ``n_threads``, else ``MATXFER_NUM_THREADS``, else the usable cores."""
    if n_threads is not None:
        if isinstance(n_threads, bool):
            raise ArgumentTypeError("n_threads must be an int, got bool")
        if not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
            raise InvalidArgumentError(f"n_threads must be a positive integer, got {n_threads!r}")
        return int(n_threads)
    env = os.environ.get("MATXFER_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidArgumentError(f"MATXFER_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_BLAS_LOCK = threading.Lock()
_BLAS_STATE: Dict[str, Any] = {"users": 0, "limit": None, "controller": None}


@contextlib.contextmanager
def _single_thread_blas():
    """BLAS with one thread while any prediction runs (counted, so concurrent predictions from
    several threads do not restore the user's setting under each other). One thread per worker
    avoids oversubscribing the cores, and the thread count is part of what fixes BLAS rounding."""
    from threadpoolctl import ThreadpoolController

    with _BLAS_LOCK:
        if _BLAS_STATE["users"] == 0:
            if _BLAS_STATE["controller"] is None:
                _BLAS_STATE["controller"] = ThreadpoolController()
            _BLAS_STATE["limit"] = _BLAS_STATE["controller"].limit(limits=1, user_api="blas")
        _BLAS_STATE["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["users"] -= 1
            if _BLAS_STATE["users"] == 0:
                _BLAS_STATE["limit"].restore_original_limits()
                _BLAS_STATE["limit"] = None


def _as_sequence(inputs: Any):
    """Something that can be sliced into chunks and handed to ``featurize``."""
    if isinstance(inputs, (list, tuple, np.ndarray)):
        return inputs
    module = type(inputs).__module__
    if module.startswith(("pandas", "polars")):
        return inputs
    if module.startswith("pyarrow"):
        return inputs
    return list(inputs)


def load_model_dir(directory: Union[str, os.PathLike], check_preset: bool = True) -> Any:
    """Load and verify a model directory (see the module docstring for the checks): a
    :class:`LibraryModel`, or a :class:`matxfer.library.structure.StructureLibraryModel` for a
    structure card (whose weights must fit ``CGCNN(**init_args)`` exactly; needs torch)."""
    directory = Path(directory)
    card_path = directory / CARD_FILE
    card = validate_card(_safeio.read_json(card_path, "model card"), card_path)
    weights = card["weights"]
    if not isinstance(weights, dict) or weights.get("file") != WEIGHTS_FILE or not isinstance(weights.get("sha256"), str):
        raise ModelFormatError(card_path, "card.weights must name weights.safetensors and its sha256")
    descriptor = card["descriptor"]
    if card["modality"] == "composition" and check_preset:
        from ..featurize import PRESETS

        preset = descriptor.get("preset")
        base = str(preset).split(":")[0]
        if base not in PRESETS and base not in ("cromel", "stats"):
            raise ModelFormatError(card_path, f"descriptor preset {preset!r} is unknown to this matxfer")
        try:
            fingerprint = feature_names_sha256(preset)
        except ValueError as err:
            raise ModelFormatError(card_path, f"descriptor preset {preset!r}: {err}") from None
        if fingerprint != descriptor.get("feature_names_sha256"):
            raise ModelFormatError(
                card_path, f"preset {preset!r} of this matxfer yields other features than the model was trained on "
                f"(matxfer {card.get('matxfer_version')}); rebuild the model"
            )
    if card["modality"] == "molecule" and check_preset:
        from .molecule import check_descriptor

        check_descriptor(descriptor, card_path)
    weights_path = directory / WEIGHTS_FILE
    state = _safeio.read_safetensors_numpy(weights_path, weights["sha256"])
    if card["modality"] == "structure":
        from .structure import load_structure_dir

        return load_structure_dir(directory, card, state)
    init_args = card["architecture"].get("init_args")
    if not isinstance(init_args, dict):
        raise ModelFormatError(card_path, "architecture.init_args is missing")
    try:
        expected = NumpyMLP.expected_shapes(init_args)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFormatError(card_path, f"invalid init_args ({err})") from None
    if set(state) != set(expected) or any(tuple(state[k].shape) != v for k, v in expected.items()):
        raise ModelFormatError(weights_path, "tensor names or shapes do not match the card's architecture")
    cls = LibraryModel
    if card["modality"] == "molecule":
        from .molecule import MoleculeLibraryModel

        cls = MoleculeLibraryModel
    try:
        return cls(card, state, directory)
    except ValueError as err:
        raise ModelFormatError(card_path, str(err)) from None


def save_mlp(model: Any, card: Dict[str, Any], directory: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Write a torch :class:`matxfer.nn.MLP` (or, for a structure card, a :class:`matxfer.nn.CGCNN`)
    and its card into ``directory``; returns the final card. Extra ``architecture`` entries of the
    card (a structure model's ``target_scaling``) are kept.

    Fills ``schema``, ``class``, ``architecture``, ``descriptor.feature_names_sha256`` and
    ``weights`` (sha256 of the written file); the rest of the card is the caller's.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    digest = _safeio.write_safetensors_numpy(directory / WEIGHTS_FILE, state)
    card = dict(card)
    card["schema"] = CARD_SCHEMA
    card["class"] = type(model).__name__
    card["architecture"] = {**card.get("architecture", {}), "class": type(model).__name__, "init_args": model.init_args}
    if card.get("modality", "composition") == "composition":
        card["descriptor"] = {**card.get("descriptor", {}), "feature_names_sha256": feature_names_sha256(card["descriptor"]["preset"])}
    card["weights"] = {"file": WEIGHTS_FILE, "sha256": digest, "dtype": "float32", "bytes": (directory / WEIGHTS_FILE).stat().st_size}
    validate_card(card, directory / CARD_FILE)
    _safeio.write_json(directory / CARD_FILE, card)
    return card
