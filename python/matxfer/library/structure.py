"""Crystal-structure source models in the model library (``modality: "structure"``).

Same format as every library model (a directory with ``card.json`` and ``weights.safetensors``);
the network is a :class:`matxfer.nn.CGCNN` (``class: "CGCNN"``, its constructor arguments in
``architecture.init_args``) and the card's ``descriptor`` records how the crystal graphs are built::

    "descriptor": {"preset": "crystal_graph", "cutoff": 8.0, "max_neighbors": 12,
                   "few_neighbors": "keep", "min_distance": 0.1,
                   "rbf": {"start": 0.0, "stop": 8.0, "n": 40}}

(``rbf`` is the Gaussian distance expansion inside the network, copied from ``init_args``).
``architecture.target_scaling`` holds the mean and standard deviation the network's output is
multiplied back with. Loading checks the card as for every modality (JSON, schema, known class,
weights sha256), then that every tensor has the name and shape ``CGCNN(**init_args)`` has.
Structure models need torch (``pip install "matxfer[torch]"``) to load and to predict.

>>> from matxfer.library.structure import build_structure_model
>>> build_structure_model("../shared/data/structures/perov5_valtest_cdvae.jsonl", "heat_ref",
...                       name="perov5/heat_of_formation/crystal_graph/cgcnn", ...)
>>> import matxfer.library as lib
>>> lib.load("perov5/heat_of_formation/crystal_graph/cgcnn").predict("POSCAR")
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..exceptions import InvalidArgumentError, ModelFormatError, StructureError

__all__ = ["StructureLibraryModel", "graph_descriptor", "holdout_split", "build_structure_model", "build_perov5_heat",
           "StructureSourceTask", "StructureBuildConfig", "STRUCTURE_TASKS", "structure_model_name"]

PRESET = "crystal_graph"
_GRAPH_KEYS = ("cutoff", "max_neighbors", "few_neighbors", "min_distance")
_TORCH_MESSAGE = 'structure library models need PyTorch: pip install "matxfer[torch]"'


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(_TORCH_MESSAGE) from None
    return torch


def graph_descriptor(init_args: Dict[str, Any], cutoff: float = 8.0, max_neighbors: Optional[int] = 12,
                     few_neighbors: str = "keep", min_distance: Optional[float] = 0.1) -> Dict[str, Any]:
    """The ``descriptor`` entry of a structure model's card (graph settings and the network's RBF)."""
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise InvalidArgumentError(f"cutoff must be a positive number of angstrom, got {cutoff!r}")
    if max_neighbors is not None and (isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int) or max_neighbors < 1):
        raise InvalidArgumentError(f"max_neighbors must be a positive integer or None, got {max_neighbors!r}")
    return {
        "preset": PRESET,
        "cutoff": float(cutoff),
        "max_neighbors": max_neighbors,
        "few_neighbors": few_neighbors,
        "min_distance": min_distance,
        "rbf": {"start": 0.0, "stop": float(init_args["cutoff"]), "n": int(init_args["n_gaussians"])},
    }


def _check_card(card: Dict[str, Any], card_path: Path) -> Tuple[Dict[str, Any], float, float]:
    if card.get("class") != "CGCNN":
        raise ModelFormatError(card_path, f"a structure model must be class 'CGCNN', got {card.get('class')!r}")
    d = card["descriptor"]
    if not isinstance(d, dict) or d.get("preset") != PRESET or any(k not in d for k in _GRAPH_KEYS):
        raise ModelFormatError(card_path, f"descriptor must be preset {PRESET!r} with {', '.join(_GRAPH_KEYS)}")
    init_args = card["architecture"].get("init_args")
    if not isinstance(init_args, dict):
        raise ModelFormatError(card_path, "architecture.init_args is missing")
    scaling = card["architecture"].get("target_scaling")
    try:
        mean, std = float(scaling["mean"]), float(scaling["std"])
    except (TypeError, KeyError, ValueError):
        raise ModelFormatError(card_path, "architecture.target_scaling needs numeric mean and std") from None
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ModelFormatError(card_path, "architecture.target_scaling must be finite with std > 0")
    return init_args, mean, std


def load_structure_dir(directory: Path, card: Dict[str, Any], state: Dict[str, np.ndarray]) -> StructureLibraryModel:
    """Build the network of a verified structure card and check the weights fit it exactly."""
    card_path = directory / "card.json"
    init_args, mean, std = _check_card(card, card_path)
    torch = _torch()
    from ..nn import CGCNN

    try:
        net = CGCNN(**init_args)
    except (TypeError, ValueError) as err:
        raise ModelFormatError(card_path, f"invalid init_args ({err})") from None
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}

    def fits(k: str) -> bool:  # a 0-d buffer (batch-norm counter) is stored with shape (1,)
        got = tuple(state[k].shape)
        return got == expected[k] or (expected[k] == () and got == (1,))

    if set(state) != set(expected) or not all(fits(k) for k in expected):
        raise ModelFormatError(directory / "weights.safetensors", "tensor names or shapes do not match the card's architecture")
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32).reshape(expected[k])) for k, v in state.items()})
    return StructureLibraryModel(card, net.eval(), mean, std, directory)


class StructureLibraryModel:
    """A library model whose inputs are crystal structures: a :class:`matxfer.structures.StructureBatch`,
    a structure file (CIF, POSCAR, XYZ, JSON lines, parquet), or pymatgen / ASE / dict structures.

    ``predict`` builds the crystal graphs with the card's settings (Rust, in chunks of
    ``chunk_size`` structures) and runs the CGCNN in torch (CPU, float32, no gradients).
    """

    def __init__(self, card: Dict[str, Any], network: Any, y_mean: float, y_std: float, path: Optional[Path] = None) -> None:
        self.card = card
        self.path = path
        self.network = network
        self.y_mean, self.y_std = y_mean, y_std

    name = property(lambda self: self.card["name"])
    preset = property(lambda self: self.card["descriptor"]["preset"])
    task = property(lambda self: self.card["task"])

    @property
    def expected_error(self) -> Optional[float]:
        """The hold-out mean absolute error from the card, else None."""
        return (self.card.get("metrics") or {}).get("mae")

    def __repr__(self) -> str:
        p = self.card["property"]
        return f"StructureLibraryModel({self.name!r}, property={p.get('name')!r} [{p.get('units', '')}], task={self.task!r})"

    def graphs(self, structures: Any, n_threads: Optional[int] = None):
        """The crystal graphs of ``structures`` built with the card's settings (a BatchedGraph)."""
        from ..graphs import build_graphs

        d = self.card["descriptor"]
        return build_graphs(structures, d["cutoff"], max_neighbors=d["max_neighbors"], few_neighbors=d["few_neighbors"],
                            min_distance=d["min_distance"], three_body_cutoff=self.network.angle_cutoff,
                            n_threads=n_threads)

    def _map_chunks(self, structures: Any, method: str, chunk_size: int, n_threads: Optional[int]) -> np.ndarray:
        from ..structures import _structure_error, as_batch
        from .model import positive_chunk_size

        chunk_size = positive_chunk_size(chunk_size)
        torch = _torch()
        batch = as_batch(structures)
        max_z = self.network.init_args["max_z"]
        outs = []
        for start in range(0, len(batch), chunk_size):
            part = batch.select(range(start, min(start + chunk_size, len(batch))))
            if len(part.numbers) and int(part.numbers.max()) > max_z:
                k = int(np.searchsorted(part.ptr, int(np.argmax(part.numbers > max_z)), side="right")) - 1
                raise _structure_error(start + k, f"atomic number above the model's max_z={max_z}")
            try:
                g = self.graphs(part, n_threads=n_threads)
            except StructureError as err:
                if start and isinstance(getattr(err, "index", None), int):
                    raise _structure_error(start + err.index, err.reason) from None
                raise
            inputs: Tuple[Any, ...] = (torch.from_numpy(g.numbers), torch.from_numpy(g.edge_index),
                      torch.from_numpy(g.distances.astype(np.float32)), torch.from_numpy(g.node_graph), g.n_graphs)
            if g.triplet_index is not None:  # a network with bond angles
                inputs = (*inputs, None, torch.from_numpy(g.triplet_index), torch.from_numpy(g.triplet_cos.astype(np.float32)))
            with torch.no_grad():
                out = getattr(self.network, method)(*inputs)
            outs.append(out.numpy())
        if not outs:
            width = 1 if method == "forward" else self.network.embedding_dim
            return np.zeros((0, width), np.float32)
        return np.concatenate(outs)

    def predict(self, structures: Any, chunk_size: int = 1024, n_threads: Optional[int] = None,
                return_error: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, Optional[float]]]:
        """Predictions (float64, the card's units) for every structure, in input order.

        Results are bit-identical for the same inputs and ``chunk_size``; ``return_error=True``
        also returns the card's hold-out MAE."""
        raw = self._map_chunks(structures, "forward", chunk_size, n_threads)[:, 0].astype(np.float64)
        pred = raw * self.y_std + self.y_mean
        if self.task == "classification":
            pred = 1.0 / (1.0 + np.exp(-pred))
        return (pred, self.expected_error) if return_error else pred

    def transform(self, structures: Any, chunk_size: int = 1024, n_threads: Optional[int] = None) -> np.ndarray:
        """Frozen features: the pooled crystal embedding (mean of the atom states after the
        convolutions, through the readout layers), float32, ``embedding_dim`` columns per structure."""
        return self._map_chunks(structures, "encode", chunk_size, n_threads)

    def to_torch(self):
        """The network (a :class:`matxfer.nn.CGCNN`, eval mode); its output is in standardized
        units: multiply by ``y_std`` and add ``y_mean`` for the card's units."""
        return self.network


# -- building ----------------------------------------------------------------------------------------


def holdout_split(batch, test_fraction: float = 0.1, by: str = "composition") -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic hold-out, independent of row order and of the seed.

    ``by="composition"`` (default): a structure is a test row when the sha256 of its reduced
    composition (sorted atomic numbers with counts divided by their gcd) falls in the lowest
    ``test_fraction`` of buckets, so polymorphs of one composition are on one side.
    ``by="structure"``: the key is the structure itself (atomic numbers, lattice and fractional
    coordinates rounded to 1e-6), for sets where every row has the same composition (polymorph
    sets such as carbon_24), where a composition split cannot make a test set.
    """
    if not 0 < test_fraction < 1:
        raise InvalidArgumentError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if by not in ("composition", "structure"):
        raise InvalidArgumentError(f"holdout_split: by must be 'composition' or 'structure', got {by!r}")
    keys = []
    for s in range(len(batch)):
        z_site = batch.numbers[batch.ptr[s] : batch.ptr[s + 1]]
        if by == "composition":
            z, counts = np.unique(z_site, return_counts=True)
            g = int(np.gcd.reduce(counts)) if len(counts) else 1
            keys.append(" ".join(f"{int(a)}:{int(c) // g}" for a, c in zip(z, counts)))
        else:
            frac = batch.frac_coords[batch.ptr[s] : batch.ptr[s + 1]]
            parts = [" ".join(str(int(a)) for a in z_site),
                     " ".join(f"{v:.6f}" for v in np.asarray(batch.lattices[s], np.float64).ravel()),
                     " ".join(f"{v:.6f}" for v in np.asarray(frac, np.float64).ravel())]
            keys.append("|".join(parts))
    buckets = np.array([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 16**8 for k in keys])
    test = buckets < test_fraction
    return np.flatnonzero(~test), np.flatnonzero(test)


def _read_targets(path: Path, column: str) -> np.ndarray:
    import json

    values = []
    opener: Any = open
    if path.suffix == ".gz":
        import gzip

        opener = gzip.open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if column not in record:
                raise InvalidArgumentError(f"{path}, line {line_no}: no field {column!r}")
            v = record[column]
            values.append(np.nan if v is None else float(v))
    return np.asarray(values, np.float64)


def build_structure_model(
    dataset_path: Union[str, os.PathLike],
    target_column: str,
    *,
    name: str,
    property_name: Optional[str] = None,
    units: str = "",
    source: Optional[Dict[str, Any]] = None,
    cutoff: float = 8.0,
    max_neighbors: Optional[int] = 12,
    node_dim: int = 64,
    n_conv: int = 3,
    n_gaussians: int = 40,
    hidden: Sequence[int] = (128,),
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_train_rows: Optional[int] = None,
    test_fraction: float = 0.1,
    split_by: str = "composition",
    target_range: Optional[Tuple[float, float]] = None,
    norm: str = "batch",
    angle_cutoff: Optional[float] = None,
    patience: Optional[int] = None,
    seed: int = 0,
    device: Any = "cpu",
    library: Union[None, str, os.PathLike] = None,
    overwrite: bool = False,
    notes: str = "",
    build_info: Optional[Dict[str, Any]] = None,
) -> Path:
    """Train a CGCNN on a JSON-lines structure set (``target_column`` of each record) and register it.

    Rows with a missing target are left out (counted in the card). The hold-out is
    :func:`holdout_split` (by reduced composition, or by structure with ``split_by="structure"`` for
    sets of one composition). ``target_range=(low, high)`` leaves out rows whose target lies outside
    it (for documented unphysical values; counted in the card, never silent). ``norm`` is the
    CGCNN's normalization (``"layer"`` for one-element sets, see :class:`matxfer.nn.CGCNN`);
    ``angle_cutoff`` gives the CGCNN bond-angle updates from the core's triplets (see :class:`matxfer.nn.CGCNN`);
    ``patience`` the early-stopping patience in epochs (default ``max(5, epochs // 4)``);
    ``max_train_rows`` takes a seeded sample of the
    other rows. The Trainer keeps 10% of the training rows for early stopping. The card records the
    graph settings, the architecture, the training settings, the hold-out MAE / RMSE / R^2 and the
    mean predictor's hold-out MAE; ``build_info`` (the library builder's recipe hash and settings)
    is stored as the card's ``build`` entry. Returns the model directory.
    """
    torch = _torch()
    from .. import __version__, _safeio
    from ..nn import CGCNN, GraphData, TrainConfig, Trainer
    from ..structures import read_structures
    from . import register
    from .model import rows_sha256
    from .molecule import _metrics

    if patience is not None and not (isinstance(patience, (int, np.integer)) and patience >= 1):
        raise InvalidArgumentError(f"patience must be a positive number of epochs, got {patience!r}")
    if target_range is not None:
        low, high = (float(v) for v in target_range)
        if not low < high:
            raise InvalidArgumentError(f"target_range must be (low, high) with low < high, got {target_range!r}")
    path = Path(dataset_path)
    batch = read_structures(path)
    y_file = _read_targets(path, target_column)
    if len(y_file) != len(batch):
        raise InvalidArgumentError(f"{path}: {len(batch)} structures but {len(y_file)} records")
    finite = np.isfinite(y_file)
    in_range = finite.copy()
    if target_range is not None:
        in_range &= (y_file >= low) & (y_file <= high)
    keep = np.flatnonzero(in_range)
    y_all = y_file
    batch, y_all = batch.select(keep), y_all[keep]
    train, test = holdout_split(batch, test_fraction, by=split_by)
    if max_train_rows is not None and len(train) > max_train_rows:
        train = np.sort(np.random.default_rng(seed).choice(train, max_train_rows, replace=False))
    if len(train) < 10 or len(test) < 1:
        hint = ""
        if split_by == "composition" and len(test) < 1:
            hint = "; the hold-out is by composition and no composition fell in the test buckets: use split_by='structure'"
        raise InvalidArgumentError(f"{path}: too few rows ({len(train)} train, {len(test)} test){hint}")
    y_mean, y_std = float(y_all[train].mean()), float(y_all[train].std())
    if not y_std > 0:
        raise InvalidArgumentError(f"{path}: column {target_column!r} is constant on the training rows")
    desc_kw = dict(cutoff=cutoff, max_neighbors=max_neighbors, few_neighbors="keep", min_distance=0.1)
    torch.manual_seed(seed)
    net = CGCNN(node_dim=node_dim, n_conv=n_conv, n_gaussians=n_gaussians, cutoff=cutoff, hidden=hidden, norm=norm,
                angle_cutoff=angle_cutoff)
    desc = graph_descriptor(net.init_args, **desc_kw)  # type: ignore[arg-type]
    from ..graphs import build_graphs

    def graphs(rows):
        return build_graphs(batch.select(rows), cutoff, max_neighbors=max_neighbors, few_neighbors="keep", min_distance=0.1,
                            three_body_cutoff=angle_cutoff)

    data = GraphData.from_graphs(graphs(train), y=(y_all[train] - y_mean) / y_std)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=max(5, epochs // 4) if patience is None else int(patience), val_fraction=0.1,
                         seed=seed, device=device, loss="l1")
    trainer = Trainer(config)
    trainer.fit(net, data)
    net = net.cpu().eval()
    card: Dict[str, Any] = {
        "name": name,
        "task": "regression",
        "modality": "structure",
        "arch": "cgcnn",
        "property": {"name": property_name or target_column, "units": units},
        "descriptor": desc,
        "source": {
            **(source or {}),
            "file": (source or {}).get("file", path.name),
            "file_sha256": _safeio.sha256_file(path),
            "column": target_column,
            "n_rows_file": len(y_file),
            "n_rows_missing_target": int(len(y_file) - int(finite.sum())),
            "n_rows_outside_target_range": int(finite.sum() - len(keep)),
            "target_range": None if target_range is None else [float(v) for v in target_range],
            "n_rows_train": int(len(train)),
            "n_rows_test": int(len(test)),
            "rows_sha256": rows_sha256([str(batch.ids[i]) for i in train], y_all[train]),
            "test_rows_sha256": rows_sha256([str(batch.ids[i]) for i in test], y_all[test]),
            "split": f"hold-out by {'reduced composition' if split_by == 'composition' else 'structure'}: "
                     f"sha256 bucket < {test_fraction:.0%}"
            + (f"; training rows: a seeded sample of at most {max_train_rows} of the rest" if max_train_rows else ""),
        },
        "training": {"epochs_max": epochs, "epochs_run": len(trainer.history), "best_epoch": trainer.best_epoch,
                     "batch_size": batch_size, "loss": config.loss, "lr": lr, "weight_decay": config.weight_decay,
                     "patience": config.patience, "val_fraction": config.val_fraction, "seed": seed,
                     "optimizer": "AdamW", "schedule": config.schedule},
        "notes": notes,
        "version": 1,
        "matxfer_version": __version__,
    }
    card["architecture"] = {"class": "CGCNN", "init_args": net.init_args, "target_scaling": {"mean": y_mean, "std": y_std}}
    if build_info is not None:
        card["build"] = build_info
    model = StructureLibraryModel(card, net, y_mean, y_std)
    pred = model._map_chunks(batch.select(test), "forward", 1024, None)[:, 0].astype(np.float64) * y_std + y_mean
    card["metrics"] = {"split": "hold-out (see source.split)", **_metrics(y_all[test], pred),
                       "mean_predictor_mae": float(np.mean(np.abs(y_all[test] - y_mean)))}
    return register(net, card, library=library, overwrite=overwrite)


def build_perov5_heat(
    data_dir: Union[None, str, os.PathLike] = None,
    *,
    epochs: int = 30,
    max_train_rows: Optional[int] = None,
    library: Union[None, str, os.PathLike] = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """The perov_5 heat-of-formation source (``perov5/heat_of_formation/crystal_graph/cgcnn``, eV
    per 5-atom cell, CMR ``heat_ref``) from ``<data_dir>/structures/perov5_valtest_cdvae.jsonl``
    (default: ``$MATXFER_SHARED_DATA`` or ``../shared/data``); ``options`` go to
    :func:`build_structure_model` (``node_dim``, ``n_conv``, ``hidden``, ``lr``, ``device``, ...)."""
    from .builder import default_data_dir

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return build_structure_model(
        root / "structures" / "perov5_valtest_cdvae.jsonl", "heat_ref",
        name="perov5/heat_of_formation/crystal_graph/cgcnn", property_name="heat_of_formation", units="eV per 5-atom cell",
        source={"dataset": "perov5", "file": "structures/perov5_valtest_cdvae.jsonl",
                "citation": "Castelli et al., Energy Environ. Sci. 5, 9034 (2012); Xie et al., ICLR 2022 (CDVAE)",
                "license": "CDVAE repository (MIT); CMR (DTU) data", "shippable": True},
        epochs=epochs, max_train_rows=max_train_rows, library=library, overwrite=overwrite, **options,
        notes="DFT-relaxed cubic perovskites ABX3 (5-atom cells), CDVAE val + test splits of perov_5; "
        "CGCNN with CGCNN-style graphs (8 angstrom, 12 nearest neighbours).",
    )


# -- the library's structure sources ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StructureSourceTask:
    """One target column of one JSON-lines structure file under the data directory."""

    dataset: str
    file: str
    property: str
    column: str
    units: str
    license: str
    citation: str
    shippable: bool
    description: str = ""
    #: ``"composition"`` or ``"structure"`` (see :func:`holdout_split`)
    split_by: str = "composition"
    #: rows whose target lies outside (low, high) are left out (see :func:`build_structure_model`)
    target_range: Optional[Tuple[float, float]] = None
    #: the CGCNN's normalization (``"batch"`` or ``"layer"``, see :class:`matxfer.nn.CGCNN`)
    norm: str = "batch"
    #: early-stopping patience in epochs (None: :func:`build_structure_model`'s default)
    patience: Optional[int] = None

    @builtins.property  # the field ``property`` shadows the builtin name in the class body
    def key(self) -> str:
        return f"{self.dataset}/{self.property}"


@dataclasses.dataclass(frozen=True)
class StructureBuildConfig:
    """CGCNN size and training budget of the library's structure sources (the shipped perov_5
    model's recipe); ``max_train_rows`` caps the training rows of the larger sets."""

    node_dim: int = 48
    n_conv: int = 3
    n_gaussians: int = 40
    hidden: Tuple[int, ...] = (64,)
    cutoff: float = 8.0
    max_neighbors: int = 12
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    max_train_rows: Optional[int] = None
    test_fraction: float = 0.1

    def recipe(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_CDVAE = ("CDVAE repository (MIT); CMR (DTU) data", "Castelli et al., Energy Environ. Sci. 5, 9034 (2012); Xie et al., ICLR 2022 (CDVAE)")
_MATMINER = ("matminer datasets (BSD); Materials Project data CC BY 4.0",
             "Dunn et al., npj Comput. Mater. 6, 138 (2020); Petousis et al., Sci. Data 4, 160134 (2017); de Jong et al., Sci. Data 2, 150053 (2015)")
_JARVIS2D = ("JARVIS-DFT (NIST, public domain in the US) via matminer datasets (BSD)",
             "Choudhary et al., npj Comput. Mater. 6, 173 (2020); Dunn et al., npj Comput. Mater. 6, 138 (2020)")
_CARBON = ("CDVAE repository (MIT); Materials Cloud record (licence not checked)",
           "Pickard, Materials Cloud doi:10.24435/materialscloud:2020.0026/v1; Xie et al., ICLR 2022 (CDVAE)")


def _st(dataset: str, file: str, prop: str, column: str, units: str, lic: Tuple[str, str], shippable: bool,
        description: str, split_by: str = "composition",
        target_range: Optional[Tuple[float, float]] = None, norm: str = "batch",
        patience: Optional[int] = None) -> StructureSourceTask:
    return StructureSourceTask(dataset, "structures/" + file, prop, column, units, lic[0], lic[1], shippable, description,
                               split_by, target_range, norm, patience)


#: The structure sources :func:`matxfer.library.build` trains (one CGCNN per task and seed).
#: carbon_24 (one element) is held out by structure and uses LayerNorm: with the default BatchNorm and
#: this recipe the CGCNN's hold-out MAE was 6x the mean predictor's (see :class:`matxfer.nn.CGCNN`). Its validation
#: loss sits on a plateau for up to ~10 epochs before it falls, so it trains without early stopping
#: (patience = the 15 epochs; the best epoch is kept); with patience 5 seed 1 stopped at epoch 6
#: no better than the mean predictor (0.115 vs 0.117 eV/atom).
STRUCTURE_TASKS: Tuple[StructureSourceTask, ...] = (
    _st("perov5", "perov5_valtest_cdvae.jsonl", "heat_of_formation", "heat_ref", "eV per 5-atom cell", _CDVAE, True,
        "heat of formation of cubic perovskites ABX3 (CMR heat_ref)"),
    _st("perov5", "perov5_valtest_cdvae.jsonl", "indirect_gap_gllbsc", "ind_gap_eV", "eV", _CDVAE, True,
        "GLLB-SC indirect band gap of cubic perovskites"),
    _st("mp_phonon_dielectric", "mp_phonon_dielectric_matminer.jsonl", "last_phdos_peak", "last_phdos_peak_cm1", "cm^-1",
        _MATMINER, True, "highest-frequency peak of the phonon density of states (DFPT)"),
    _st("mp_phonon_dielectric", "mp_phonon_dielectric_matminer.jsonl", "eps_electronic", "eps_electronic", "dimensionless",
        _MATMINER, True, "electronic (high-frequency) dielectric constant (DFPT); the 3 rows above 100 (Sr2SnHg 110, "
        "Sn(HgSe2)2 561, InCuTe2 2.9e6: DFPT on (near-)metallic cells) are left out", target_range=(1.0, 100.0)),
    _st("mp_piezoelectric", "mp_piezoelectric_matminer.jsonl", "eij_max", "eij_max_C_per_m2", "C/m^2", _MATMINER, True,
        "largest piezoelectric tensor component (DFPT)"),
    _st("jarvis_2d", "jarvis_dft_2d_matminer.jsonl", "exfoliation_energy", "exfoliation_energy_meV_per_atom", "meV/atom",
        _JARVIS2D, True, "exfoliation energy of layered materials (OptB88vdW)"),
    _st("jarvis_2d", "jarvis_dft_2d_matminer.jsonl", "formation_energy", "formation_energy_eV_per_atom", "eV/atom",
        _JARVIS2D, True, "formation energy of 2D materials (OptB88vdW)"),
    _st("jarvis_2d", "jarvis_dft_2d_matminer.jsonl", "band_gap_optb88vdw", "band_gap_optb88vdw_eV", "eV", _JARVIS2D, True,
        "OptB88vdW band gap of 2D materials"),
    _st("carbon24", "carbon24_valtest_cdvae.jsonl", "energy_per_atom", "energy_per_atom_eV", "eV/atom", _CARBON, False,
        "DFT energy per atom of carbon polymorphs at 10 GPa (absolute, not a formation energy)", split_by="structure",
        norm="layer", patience=15),
)


def structure_model_name(task: StructureSourceTask, seed: int) -> str:
    return f"{task.dataset}/{task.property}/{PRESET}/cgcnn" + (f"-s{seed}" if seed else "")


_LATER_TASK_OPTIONS = ("split_by", "target_range", "norm", "patience")


def structure_recipe_sha256(task: StructureSourceTask, seed: int, config: StructureBuildConfig, file_sha256: str) -> str:
    # options added after the first builds are left out at their defaults, so the recipe hashes of
    # tasks that do not use them still hold
    task_fields = dataclasses.asdict(task)
    for field in dataclasses.fields(task):
        if field.name in _LATER_TASK_OPTIONS and task_fields[field.name] == field.default:
            del task_fields[field.name]
    blob = json.dumps({"task": task_fields, "seed": seed, "config": config.recipe(), "file_sha256": file_sha256},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def build_structure_task(task: StructureSourceTask, data_dir: Path, seed: int, config: StructureBuildConfig,
                         library: Path, recipe: str) -> Path:
    """Train and register one library structure source (called by :func:`matxfer.library.build`)."""
    return build_structure_model(
        data_dir / task.file, task.column, name=structure_model_name(task, seed), property_name=task.property,
        units=task.units,
        source={"dataset": task.dataset, "file": task.file, "citation": task.citation, "license": task.license,
                "shippable": task.shippable, "description": task.description},
        cutoff=config.cutoff, max_neighbors=config.max_neighbors, node_dim=config.node_dim, n_conv=config.n_conv,
        n_gaussians=config.n_gaussians, hidden=config.hidden, epochs=config.epochs, batch_size=config.batch_size,
        lr=config.lr, max_train_rows=config.max_train_rows, test_fraction=config.test_fraction,
        split_by=task.split_by, target_range=task.target_range, norm=task.norm, patience=task.patience, seed=seed, library=library, overwrite=True, notes=task.description,
        build_info={"recipe_sha256": recipe, "config": config.recipe()},
    )
