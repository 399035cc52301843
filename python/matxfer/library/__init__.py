"""The pretrained model library: source models shipped in the wheel or rebuilt from public data.

>>> import matxfer.library as lib
>>> lib.search(property="band_gap", preset="magpie_full")          # a pandas DataFrame of cards
>>> model = lib.load("mp_gap/band_gap/magpie_full/mlp")
>>> model.predict(["Fe2O3", "NaCl"])                                  # eV, numpy; torch not needed

Libraries are directories of model directories named ``<dataset>/<property>/<preset>/<arch>[-seed]``,
each holding ``card.json`` and ``weights.safetensors`` (see :mod:`matxfer.library.model`). Two are
searched, in this order: the user library (``$MATXFER_LIBRARY``, default the platform's user cache
directory + ``/library``; ``matxfer library build`` writes there) and the models shipped inside the
package. Importing this module imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from .. import _safeio
from ..exceptions import ArgumentTypeError, ModelFormatError, ModelNotFoundError
from .model import CARD_FILE, CARD_SCHEMA, LibraryModel, load_model_dir, rows_sha256, save_mlp

__all__ = [
    "CARD_SCHEMA",
    "LibraryModel",
    "user_dir",
    "shipped_dir",
    "library_dirs",
    "list",
    "search",
    "card",
    "cards",
    "load",
    "register",
    "build",
    "rows_sha256",
]

_builtin_list = list


def shipped_dir() -> Path:
    """The models shipped inside the package (read-only)."""
    return Path(__file__).resolve().parent / "models"


def user_dir() -> Path:
    """``$MATXFER_LIBRARY`` or ``<user cache dir>/matxfer/library`` (platformdirs)."""
    env = os.environ.get("MATXFER_LIBRARY")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("matxfer")) / "library"
    except ImportError:  # platformdirs is a dependency; keep a sane fallback anyway
        return Path.home() / ".cache" / "matxfer" / "library"


def library_dirs(library: Union[None, str, os.PathLike, Iterable[Union[str, os.PathLike]]] = None) -> List[Path]:
    """The directories searched: ``library`` if given (one path or several), else user then shipped."""
    if library is None:
        return [user_dir(), shipped_dir()]
    if isinstance(library, (str, os.PathLike)):
        return [Path(library)]
    return [Path(p) for p in library]


def _model_dirs(root: Path) -> Iterable[Path]:
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(CARD_FILE))


def cards(library=None) -> Dict[str, Dict[str, Any]]:
    """``{name: card}`` for every model found (the first library directory wins on a name clash).

    Cards that cannot be read are skipped here (``load`` reports why); ``card["_path"]`` is the
    model directory.
    """
    found: Dict[str, Dict[str, Any]] = {}
    for root in library_dirs(library):
        for directory in _model_dirs(root):
            try:
                c = _safeio.read_json(directory / CARD_FILE, "model card")
            except ModelFormatError:
                continue
            if not isinstance(c, dict) or "name" not in c or c["name"] in found:
                continue
            found[c["name"]] = {**c, "_path": str(directory)}
    return found


_COLUMNS = ["name", "dataset", "property", "units", "task", "modality", "preset", "arch", "seed", "n_rows",
            "mae", "rmse", "r2", "accuracy", "roc_auc", "license", "shippable", "path"]


def _row(c: Dict[str, Any]) -> Dict[str, Any]:
    metrics = c.get("metrics") or {}
    prop = c.get("property") or {}
    source = c.get("source") or {}
    return {
        "name": c["name"],
        "dataset": source.get("dataset"),
        "property": prop.get("name"),
        "units": prop.get("units"),
        "task": c.get("task"),
        "modality": c.get("modality"),
        "preset": (c.get("descriptor") or {}).get("preset"),
        "arch": c.get("arch"),
        "seed": (c.get("training") or {}).get("seed"),
        "n_rows": source.get("n_rows_train"),
        "mae": metrics.get("mae"),
        "rmse": metrics.get("rmse"),
        "r2": metrics.get("r2"),
        "accuracy": metrics.get("accuracy"),
        "roc_auc": metrics.get("roc_auc"),
        "license": source.get("license"),
        "shippable": source.get("shippable"),
        "path": c.get("_path"),
    }


def list(library=None):  # noqa: A001 - the registry's natural verb
    """Every model as a pandas DataFrame (one row per card), sorted by name."""
    import pandas as pd

    rows = [_row(c) for c in cards(library).values()]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    return frame.sort_values("name", kind="stable").reset_index(drop=True)


_METRIC_FILTERS = ("mae", "rmse", "r2", "accuracy", "roc_auc")


def search(
    property: Optional[str] = None,  # noqa: A002
    modality: Optional[str] = None,
    preset: Optional[str] = None,
    task: Optional[str] = None,
    dataset: Optional[str] = None,
    name: Optional[str] = None,
    library=None,
    **metric_bounds: float,
):
    """Models matching every given filter, as a DataFrame.

    ``property``, ``dataset`` and ``name`` match a substring (case-insensitive); ``modality``,
    ``preset`` and ``task`` match exactly. Metric bounds: ``mae_max=0.3``, ``r2_min=0.8``,
    ``roc_auc_min=0.9`` (``<metric>_max`` / ``<metric>_min`` for mae, rmse, r2, accuracy, roc_auc).
    """
    frame = list(library)
    mask = frame["name"].notna()
    for column, value in (("property", property), ("dataset", dataset), ("name", name)):
        if value is not None:
            mask &= frame[column].fillna("").str.lower().str.contains(str(value).lower(), regex=False)
    for column, value in (("modality", modality), ("preset", preset), ("task", task)):
        if value is not None:
            mask &= frame[column] == value
    for key, bound in metric_bounds.items():
        metric, _, side = key.rpartition("_")
        if metric not in _METRIC_FILTERS or side not in ("min", "max"):
            valid = ", ".join(
                ["property", "modality", "preset", "task", "dataset", "name"]
                + [f"{m}_{s}" for m in _METRIC_FILTERS for s in ("min", "max")]
            )
            raise ArgumentTypeError(f"search() got an unknown filter {key!r}; valid filters: {valid}")
        values = frame[metric].astype(float)
        mask &= (values <= bound) if side == "max" else (values >= bound)
    return frame[mask].reset_index(drop=True)


def _resolve(name: str, library=None) -> Path:
    if "/" in name and Path(name).is_dir() and (Path(name) / CARD_FILE).exists():
        return Path(name)
    for root in library_dirs(library):
        candidate = root / name
        if (candidate / CARD_FILE).is_file():
            return candidate
    searched = ", ".join(str(p) for p in library_dirs(library))
    raise ModelNotFoundError(f"no library model {name!r} in {searched}; see matxfer.library.list() or `matxfer library build`")


def card(name: str, library=None) -> Dict[str, Any]:
    """The card of one model (verified as ``load`` verifies it, weights included)."""
    return load(name, library).card


def load(name: str, library=None) -> Any:
    """Load a model by name (or model directory path), verifying card, preset and weights: a
    :class:`LibraryModel`, or a :class:`matxfer.library.structure.StructureLibraryModel` for a
    ``modality: "structure"`` card (needs torch)."""
    return load_model_dir(_resolve(name, library))


def register(model: Any, card: Dict[str, Any], library=None, overwrite: bool = False) -> Path:
    """Save a trained :class:`matxfer.nn.MLP` (a :class:`matxfer.nn.CGCNN` for ``modality: "structure"``)
    with its card into a library (default: the user library).

    ``card`` needs at least ``name`` (``<dataset>/<property>/<preset>/<arch>[-seed]``), ``task``,
    ``modality``, ``property`` (``{"name", "units"}``), ``source`` (``{"dataset", ...}``) and
    ``descriptor`` (``{"preset"}``); schema, architecture and weight hashes are filled in.
    """
    root = library_dirs(library)[0]
    name = card.get("name", "")
    parts = name.split("/")
    if len(parts) < 2 or any(not p or p in (".", "..") for p in parts):
        raise ValueError(f"invalid model name {name!r}; use <dataset>/<property>/<preset>/<arch>[-seed]")
    directory = root / name
    if (directory / CARD_FILE).exists() and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True")
    save_mlp(model, card, directory)
    load_model_dir(directory)  # refuse to leave a model behind that would not load
    return directory


def build(*args, **kwargs):
    """Rebuild the library from ``../shared/data``-style sources (needs torch); see :func:`matxfer.library.builder.build`."""
    from .builder import build as _build

    return _build(*args, **kwargs)
