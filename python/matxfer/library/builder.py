"""Rebuild the model library from the public datasets in ``../shared/data`` (needs torch).

``build()`` trains one descriptor MLP per (source task, preset, seed) and one CGCNN per (structure
source, seed) (:data:`matxfer.library.structure.STRUCTURE_TASKS`), writes each into the
library directory with its card, and appends one line per model to ``build_log.jsonl`` (seconds,
thread count). It is resumable (a model whose card exists with the same recipe hash is skipped),
reproducible (same bytes for the same data, machine and thread count: seeded splits, seeded
training, cards without timestamps) and shows progress.

Every source is split by reduced composition: 10 % of the distinct compositions (chosen by a hash
of the composition, not by row order) are held out for the card's metrics, the rest is the
training pool, of which at most ``max_train_rows`` seeded rows are used. The card records the row
counts and the sha256 of the exact training formulas and targets.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _safeio
from .model import CARD_FILE, rows_sha256

__all__ = ["SourceTask", "TASKS", "DEFAULT_PRESETS", "BuildConfig", "build", "default_data_dir"]

DEFAULT_PRESETS = ("magpie_full", "xenonpy", "cromel", "fraction")

MP = ("CC BY 4.0 (Materials Project), redistributed via matbench/CrabNet (MIT)", True,
      "Jain et al., APL Mater. 1, 011002 (2013); Dunn et al., npj Comput. Mater. 6, 138 (2020)")
MP_CRABNET = ("CC BY 4.0 (Materials Project); CrabNet split files (MIT)", True,
              "Jain et al., APL Mater. 1, 011002 (2013); de Jong et al., Sci. Data 2, 150009 (2015); Wang et al., npj Comput. Mater. 7, 77 (2021)")
BARTEL = ("CC BY 4.0 (Materials Project); CrabNet (MIT)", True,
          "Bartel et al., npj Comput. Mater. 6, 97 (2020); Jain et al. (2013)")
OQMD = ("CC BY 4.0 (OQMD); CrabNet split files (MIT)", True,
        "Saal et al., JOM 65, 1501 (2013); Kirklin et al., npj Comput. Mater. 1, 15010 (2015)")
AFLOW = ("AFLOW terms of use (not checked for redistribution); CrabNet split files (MIT)", False,
         "Curtarolo et al., Comput. Mater. Sci. 58, 218 (2012); Toher et al., PRB 90, 174107 (2014)")
JARVIS = ("public (JARVIS-DFT, NIST); re-hosting repository without licence", True,
          "Choudhary et al., npj Comput. Mater. 6, 173 (2020)")
MATBENCH = ("matbench via CrabNet (MIT); underlying MP / CMR data CC BY 4.0", True,
            "Dunn et al., npj Comput. Mater. 6, 138 (2020)")
CASTELLI = ("matbench via CrabNet (MIT); CMR (DTU) data", True,
            "Castelli et al., Energy Environ. Sci. 5, 9034 (2012); Dunn et al. (2020)")
MATMINER = ("matminer re-upload without licence file (Zhang-NJ-Lab/Datasets); not redistributed", False, "")


@dataclasses.dataclass(frozen=True)
class SourceTask:
    """One property of one source file. ``column`` names the target (or ``property`` value in long
    files); ``derive`` turns the raw target into the trained one (e.g. a 0/1 class)."""

    dataset: str
    file: str
    property: str
    column: str
    units: str
    license: Tuple[str, bool, str]
    task: str = "regression"
    long_property: Optional[str] = None  # long-format files: value of the "property" column
    derive: Optional[str] = None  # "is_zero": 1 when the raw value is 0 (metal); "le_zero": 1 when <= 0 (stable)
    positive: Optional[str] = None
    description: str = ""

    @builtins.property  # the field ``property`` shadows the builtin name in the class body for type checkers
    def key(self) -> str:
        return f"{self.dataset}/{self.property}"


def _t(dataset, file, prop, column, units, lic, **kw) -> SourceTask:
    return SourceTask(dataset, file, prop, column, units, lic, **kw)


D = "composition/dft/"
TASKS: Tuple[SourceTask, ...] = (
    _t("mp_gap", D + "mp_gap_matbench.csv", "band_gap", "band_gap_pbe_eV", "eV", MP, description="PBE band gap"),
    _t("mp_gap", D + "mp_gap_matbench.csv", "is_metal", "band_gap_pbe_eV", "probability", MP, task="classification",
       derive="is_zero", positive="metal (PBE gap = 0)"),
    _t("mp_e_form", D + "mp_e_form_matbench.csv", "formation_energy", "formation_energy_eV_per_atom", "eV/atom", MP),
    *[_t("mp_properties", D + "mp_properties_crabnet.csv.gz", p, "value", u, MP_CRABNET, long_property=p)
      for p, u in (("bulk_modulus_vrh", "GPa"), ("shear_modulus_vrh", "GPa"), ("elastic_anisotropy", "dimensionless"),
                   ("energy_above_hull", "eV/atom"), ("magnetic_moment", "Bohr magneton per cell"))],
    _t("mp_properties", D + "mp_properties_crabnet.csv.gz", "is_stable", "value", "probability", MP_CRABNET,
       task="classification", long_property="energy_above_hull", derive="is_zero", positive="on the convex hull (E_hull = 0)"),
    _t("mp_stability", D + "mp_stability_bartel_crabnet.csv", "formation_energy", "formation_energy_eV_per_atom", "eV/atom", BARTEL),
    _t("mp_stability", D + "mp_stability_bartel_crabnet.csv", "decomposition_energy", "decomposition_energy_eV_per_atom", "eV/atom", BARTEL),
    _t("mp_stability", D + "mp_stability_bartel_crabnet.csv", "is_stable", "decomposition_energy_eV_per_atom", "probability", BARTEL,
       task="classification", derive="le_zero", positive="stable (decomposition energy <= 0)"),
    _t("oqmd_gap", D + "oqmd_bandgap_crabnet.csv.gz", "band_gap", "band_gap_eV", "eV", OQMD),
    _t("oqmd_gap", D + "oqmd_bandgap_crabnet.csv.gz", "is_metal", "band_gap_eV", "probability", OQMD, task="classification",
       derive="is_zero", positive="metal (gap = 0)"),
    _t("oqmd_hf", D + "oqmd_formation_enthalpy_crabnet_valtest.csv", "formation_enthalpy", "formation_enthalpy_eV_per_atom", "eV/atom", OQMD),
    *[_t("aflow", D + "aflow_properties_crabnet.csv", p, "value", u, AFLOW, long_property=p)
      for p, u in (("band_gap", "eV"), ("energy_per_atom", "eV/atom"), ("bulk_modulus_vrh", "GPa"), ("shear_modulus_vrh", "GPa"),
                   ("debye_temperature", "K"), ("thermal_conductivity_300K", "W/(m K)"), ("thermal_expansion_300K", "1/K"))],
    _t("jarvis", D + "jarvis_dft_3d_composition.csv", "formation_energy", "formation_energy_eV_per_atom", "eV/atom", JARVIS),
    _t("jarvis", D + "jarvis_dft_3d_composition.csv", "band_gap_optb88vdw", "band_gap_optb88vdw_eV", "eV", JARVIS),
    _t("jarvis", D + "jarvis_dft_3d_composition.csv", "band_gap_tbmbj", "band_gap_tbmbj_eV", "eV", JARVIS),
    _t("jarvis", D + "jarvis_dft_3d_composition.csv", "energy_above_hull", "energy_above_hull_eV_per_atom", "eV/atom", JARVIS),
    _t("jarvis", D + "jarvis_dft_3d_composition.csv", "is_metal", "band_gap_optb88vdw_eV", "probability", JARVIS,
       task="classification", derive="is_zero", positive="metal (OptB88vdW gap = 0)"),
    _t("matbench_perovskites", D + "perovskites_castelli_matbench.csv", "heat_of_formation", "heat_of_formation_eV_per_cell", "eV per 5-atom cell", CASTELLI),
    _t("matbench_dielectric", D + "dielectric_matbench.csv", "refractive_index", "refractive_index", "dimensionless", MATBENCH),
    _t("matbench_log_kvrh", D + "log10_bulk_modulus_matbench.csv", "log10_bulk_modulus", "log10_K_VRH_GPa", "log10(GPa)", MATBENCH),
    _t("matbench_log_gvrh", D + "log10_shear_modulus_matbench.csv", "log10_shear_modulus", "log10_G_VRH_GPa", "log10(GPa)", MATBENCH),
    *[_t("wolverton_oxides", D + "wolverton_oxides.csv", p, c, u, MATMINER)
      for p, c, u in (("formation_energy", "e_form", "eV/atom"), ("energy_above_hull", "e_hull", "eV/atom"),
                      ("volume_per_atom", "vpa", "A^3/atom"), ("band_gap_pbe", "gap pbe", "eV"), ("magnetic_moment", "mu_b", "Bohr magneton"))],
    _t("double_perovskites", D + "double_perovskites_gap.csv", "band_gap_gllbsc", "gap gllbsc", "eV", MATMINER),
    *[_t("heusler", D + "heusler_magnetic.csv", p, c, u, MATMINER)
      for p, c, u in (("formation_energy", "e_form", "eV/atom"), ("lattice_constant", "latt const", "A"),
                      ("tetragonality", "tetragonality", "dimensionless"), ("magnetic_moment", "mu_b", "Bohr magneton per f.u."),
                      ("fermi_polarization", "pol fermi", "%"))],
    *[_t("m2ax", D + "m2ax.csv", p, c, "GPa", MATMINER)
      for p, c in (("bulk_modulus", "bulk modulus"), ("shear_modulus", "shear modulus"), ("elastic_modulus", "elastic modulus"))],
)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Model size and training budget of library models (sized so the whole library builds in
    well under 90 minutes on a 2-core machine).

    Two sizes, chosen by how many training rows a source offers (its rows outside the held-out
    compositions): a source with at least ``large_from_rows`` of them trains a ``hidden_large``
    network on a seeded sample of at most ``max_train_rows_large`` rows; a smaller one a ``hidden``
    network on at most ``max_train_rows``. A large computed set is what transfer feeds on: on
    matbench expt_gap, `auto` with an MP-gap source of 512-256-128 on 100,000 rows reached 0.323 eV
    against 0.357 with a 256-128 source on 20,000 rows (benches/RESULTS.md)."""

    hidden: Tuple[int, ...] = (256, 128)
    max_train_rows: int = 20000
    large_from_rows: int = 50000
    hidden_large: Tuple[int, ...] = (512, 256, 128)
    max_train_rows_large: int = 100000
    max_test_rows: int = 10000
    test_fraction: float = 0.1
    epochs_large: int = 15  # training sets of >= 10,000 rows
    epochs_small: int = 40
    patience: int = 4
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.05

    def __post_init__(self) -> None:
        from ..exceptions import InvalidArgumentError

        def whole(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for field in ("hidden", "hidden_large"):
            widths = getattr(self, field)
            if isinstance(widths, list):  # read back from a card's JSON
                widths = tuple(widths)
                object.__setattr__(self, field, widths)
            if not isinstance(widths, tuple) or not widths or not all(whole(h) and 1 <= h <= 65536 for h in widths):
                raise InvalidArgumentError(f"{field} must be one or more layer widths between 1 and 65536, not {widths!r}")
        for field in ("max_train_rows", "large_from_rows", "max_train_rows_large", "max_test_rows", "epochs_large",
                      "epochs_small", "patience", "batch_size"):
            value = getattr(self, field)
            if not whole(value) or value < 1:
                raise InvalidArgumentError(f"{field} must be a whole number >= 1, not {value!r}")
        if not 0 < self.test_fraction < 1:
            raise InvalidArgumentError(f"test_fraction must be in (0, 1), not {self.test_fraction!r}")
        if not 0 <= self.val_fraction < 1:
            raise InvalidArgumentError(f"val_fraction must be in [0, 1), not {self.val_fraction!r}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise InvalidArgumentError(f"lr must be a finite number > 0, not {self.lr!r}")
        if not self.weight_decay >= 0:
            raise InvalidArgumentError(f"weight_decay must be >= 0, not {self.weight_decay!r}")

    def recipe(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_recipe(cls, recipe: Dict) -> BuildConfig:
        """The config a card's ``build.config`` records. Cards written before the two model sizes
        existed trained every source at ``hidden`` on at most ``max_train_rows`` rows."""
        recipe = dict(recipe)
        if "large_from_rows" not in recipe:
            recipe.update(large_from_rows=2**62, hidden_large=tuple(recipe.get("hidden", cls.hidden)),
                          max_train_rows_large=recipe.get("max_train_rows", cls.max_train_rows))
        return cls(**recipe)

    def size_for(self, pool_rows: int) -> Tuple[Tuple[int, ...], int]:
        """``(hidden widths, training-row cap)`` for a source offering ``pool_rows`` training rows."""
        if pool_rows >= self.large_from_rows:
            return self.hidden_large, self.max_train_rows_large
        return self.hidden, self.max_train_rows


def default_data_dir() -> Path:
    env = os.environ.get("MATXFER_DATA")
    if env:
        return Path(env)
    for candidate in (Path.cwd() / "../shared/data", Path.cwd() / "shared/data", Path(__file__).resolve().parents[4] / "../shared/data"):
        if (candidate / "MANIFEST.md").exists():
            return candidate.resolve()
    raise FileNotFoundError("no data directory: pass data_dir= or set MATXFER_DATA (the shared/data folder with MANIFEST.md)")


def _read(data_dir: Path, task: SourceTask):
    import pandas as pd

    frame = pd.read_csv(data_dir / task.file, keep_default_na=False, dtype={"formula": str}, low_memory=False)
    if task.long_property is not None:
        frame = frame[frame["property"] == task.long_property]
    formulas = frame["formula"].astype(str).to_numpy()
    raw = pd.to_numeric(frame[task.column].replace("", np.nan), errors="coerce").to_numpy(np.float64)
    keep = np.isfinite(raw) & (formulas != "")
    formulas, raw = formulas[keep], raw[keep]
    return formulas, _derive(task, raw)


def _derive(task: SourceTask, raw: np.ndarray) -> np.ndarray:
    if task.derive == "is_zero":
        return (np.abs(raw) < 1e-9).astype(np.float64)
    if task.derive == "le_zero":
        return (raw <= 0).astype(np.float64)
    return raw


def held_out_mask(formulas: Any, test_fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """``(is_test, bad)`` per formula under the library's split rule: a reduced composition is held
    out when a hash of its rounded element fractions falls below ``test_fraction``. The rule depends
    on the composition only, so it tells for any formula whether a library model's training rows
    could have held it (``card["build"]["config"]["test_fraction"]``); ``bad``: unparsable."""
    from ..featurize import featurize

    fractions = featurize(list(formulas), "fraction", errors="nan").values
    rounded = np.round(fractions, 6) + 0.0
    bucket = np.array([int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:4], "little") for row in rounded], dtype=np.int64)
    is_test = (bucket % 10000) < int(test_fraction * 10000)
    bad = ~np.isfinite(fractions).all(axis=1)
    return is_test, bad


def _split(formulas: np.ndarray, config: BuildConfig, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, int]:
    """Train/test row indices and the size of the training pool: a composition is in the test set
    when a hash of its reduced composition falls below ``test_fraction`` (order- and
    duplicate-independent); the training rows are a seeded sample of the rest, capped by
    :meth:`BuildConfig.size_for` of the pool."""
    is_test, bad = held_out_mask(formulas, config.test_fraction)
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(~is_test & ~bad)
    test = np.flatnonzero(is_test & ~bad)
    pool = len(train)
    _, cap = config.size_for(pool)
    if len(train) > cap:
        train = np.sort(rng.choice(train, cap, replace=False))
    if len(test) > config.max_test_rows:
        test = np.sort(rng.choice(test, config.max_test_rows, replace=False))
    return train, test, pool


def _metrics(task: str, y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    if len(y) == 0:
        return {}
    if task == "classification":
        from sklearn.metrics import roc_auc_score

        out = {"accuracy": float(np.mean((pred >= 0.5) == (y >= 0.5)))}
        if 0 < y.mean() < 1:
            out["roc_auc"] = float(roc_auc_score(y, pred))
        return out
    err = pred - y
    ss = float(np.sum((y - y.mean()) ** 2))
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "r2": float(1 - np.sum(err**2) / ss) if ss > 0 else float("nan")}


def _model_name(task: SourceTask, preset: str, seed: int) -> str:
    return f"{task.dataset}/{task.property}/{preset}/mlp" + (f"-s{seed}" if seed else "")


def _already_built(card_path: Path, recipe: str) -> bool:
    """A model is skipped on resume when its card exists and records the same recipe hash; an
    unreadable card is rebuilt."""
    if not card_path.exists():
        return False
    try:
        return _safeio.read_json(card_path).get("build", {}).get("recipe_sha256") == recipe
    except Exception:
        return False


def _recipe_hash(task: SourceTask, preset: str, seed: int, config: BuildConfig) -> str:
    blob = json.dumps({"task": dataclasses.asdict(task), "preset": preset, "seed": seed, "config": config.recipe()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def build(
    out: Optional[str | os.PathLike] = None,
    data_dir: Optional[str | os.PathLike] = None,
    presets: Sequence[str] = DEFAULT_PRESETS,
    seeds: Sequence[int] = (0,),
    tasks: Optional[Sequence[str]] = None,
    config: BuildConfig = BuildConfig(),
    n_threads: Optional[int] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    modalities: Sequence[str] = ("composition", "structure"),
    structure_config: Any = None,
) -> List[str]:
    """Build (or resume building) the library; returns the names of the models now present.

    ``tasks``: keys ``"<dataset>/<property>"`` or dataset names to restrict the build (default: all
    of :data:`TASKS` and of the structure sources
    :data:`matxfer.library.structure.STRUCTURE_TASKS`). ``modalities``: which of the two lists
    to build. ``out``: library directory (default: the user library). Composition models are built
    preset by preset, so an interrupted build has every task of the first presets; the structure
    sources (a CGCNN per task and seed, ``structure_config``: a
    :class:`~matxfer.library.structure.StructureBuildConfig`) come last.
    """
    unknown = set(modalities) - {"composition", "structure"}
    if unknown:
        from ..exceptions import InvalidArgumentError

        raise InvalidArgumentError(f"unknown modalities {sorted(unknown)}; use 'composition' and/or 'structure'")
    import torch

    import matxfer

    from ..nn import MLP, ArrayData, TrainConfig, Trainer, predict
    from . import user_dir

    out = Path(out) if out is not None else user_dir()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    threads = torch.get_num_threads()
    chosen = [t for t in TASKS if tasks is None or t.key in tasks or t.dataset in tasks] if "composition" in modalities else []
    jobs = [(preset, seed, t) for preset in presets for seed in seeds for t in chosen]
    from .structure import STRUCTURE_TASKS

    chosen_structure = [t for t in STRUCTURE_TASKS if "structure" in modalities and (tasks is None or t.key in tasks or t.dataset in tasks)]
    n_jobs = len(jobs) + len(seeds) * len(chosen_structure)
    names: List[str] = []
    split_cache: Dict[Tuple[str, str, str], Tuple] = {}
    feat_cache: Dict[Tuple[str, str, str, str], Tuple] = {}
    t_start = time.perf_counter()
    for k, (preset, seed, task) in enumerate(jobs):
        name = _model_name(task, preset, seed)
        recipe = _recipe_hash(task, preset, seed, config)
        if _already_built(out / name / CARD_FILE, recipe):
            names.append(name)
            continue
        t0 = time.perf_counter()
        # One read + split per source file and column (shared by its regression and derived
        # classification tasks, by every preset and every seed), and one featurization per
        # (file, column, preset): the derived tasks and the other seeds reuse it.
        rk = (task.file, task.long_property or "", task.column)
        if rk not in split_cache:
            formulas, y_raw = _read(data_dir, dataclasses.replace(task, derive=None))
            train, test, pool = _split(formulas, config)
            split_cache[rk] = (formulas, y_raw, train, test, pool)
        formulas, y_raw, train, test, pool = split_cache[rk]
        hidden, row_cap = config.size_for(pool)
        y = _derive(task, y_raw)
        fk = (*rk, preset)
        if fk not in feat_cache:
            if feat_cache and next(iter(feat_cache))[-1] != preset:
                feat_cache.clear()  # jobs run preset by preset: the previous preset's features are done
            rows = np.concatenate([train, test])
            feats = matxfer.featurize(list(formulas[rows]), preset, errors="nan", dtype=np.float32)
            ok = np.ones(len(rows), bool)
            ok[[r[0] for r in feats.rejected]] = False
            feat_cache[fk] = (feats.values, ok)
        X, ok = feat_cache[fk]
        n_train = len(train)
        ok_tr, ok_te = ok[:n_train], ok[n_train:]
        f_tr, y_tr, X_tr = formulas[train][ok_tr], y[train][ok_tr], X[:n_train][ok_tr]
        f_te, y_te, X_te = formulas[test][ok_te], y[test][ok_te], X[n_train:][ok_te]
        n_all = len(formulas)
        classification = task.task == "classification"
        epochs = config.epochs_large if len(y_tr) >= 10000 else config.epochs_small
        batch = int(min(config.batch_size, max(64, len(y_tr) // 10)))
        tc = TrainConfig(epochs=epochs, batch_size=batch, lr=config.lr, weight_decay=config.weight_decay,
                         patience=config.patience, val_fraction=config.val_fraction, loss="bce" if classification else "l1",
                         seed=seed, device="cpu")
        torch.manual_seed(seed)
        model = MLP(X_tr.shape[1], hidden).fit_scaling(X_tr)
        if not classification:
            model.fit_target_scaling(y_tr)
        trainer = Trainer(tc)
        trainer.fit(model, ArrayData(X_tr, y_tr))
        model = model.cpu().eval()
        raw = predict(model, X_te) if len(X_te) else np.zeros(0)
        pred = 1 / (1 + np.exp(-raw)) if classification else raw
        seconds = time.perf_counter() - t0
        lic, shippable, citation = task.license
        card: Dict[str, Any] = {
            "name": name,
            "version": 1,
            "arch": "mlp",
            "task": task.task,
            "modality": "composition",
            "property": {"name": task.property, "units": task.units, "description": task.description or task.property.replace("_", " "),
                         **({"positive": task.positive} if task.positive else {})},
            "source": {
                "dataset": task.dataset, "file": task.file, "column": task.column,
                **({"property_filter": task.long_property} if task.long_property else {}),
                **({"derived": task.derive} if task.derive else {}),
                "n_rows_file": int(n_all), "n_rows_train": int(len(y_tr)), "n_rows_test": int(len(y_te)),
                "rows_sha256": rows_sha256(f_tr, y_tr), "test_rows_sha256": rows_sha256(f_te, y_te),
                "license": lic, "shippable": bool(shippable), "citation": citation,
                "split": f"hold-out by reduced composition: sha256(rounded element fractions) bucket < {config.test_fraction:.0%}; "
                         f"training rows: a seeded sample of at most {row_cap} of the {pool} others",
            },
            "descriptor": {"preset": preset, "n_features": int(X_tr.shape[1])},
            "matxfer_version": matxfer.__version__,
            "training": {"seed": seed, "loss": tc.loss, "epochs_max": epochs, "epochs_run": len(trainer.history),
                         "best_epoch": trainer.best_epoch, "batch_size": batch, "lr": tc.lr, "weight_decay": tc.weight_decay,
                         "patience": tc.patience, "val_fraction": tc.val_fraction, "schedule": tc.schedule, "optimizer": "AdamW"},
            "metrics": {"split": "hold-out (see source.split)", **_metrics(task.task, y_te, pred)},
            "notes": "Composition-level model: polymorphs of one formula share one prediction. Sources overlap with "
                     "experimental sets (3,347 of 4,604 matbench expt_gap compositions occur in mp_gap).",
            "build": {"recipe_sha256": recipe, "config": config.recipe()},
        }
        from .model import save_mlp

        save_mlp(model, card, out / name)
        names.append(name)
        with open(out / "build_log.jsonl", "a") as fh:
            fh.write(json.dumps({"name": name, "seconds": round(seconds, 2), "threads": threads,
                                 "n_train": int(len(y_tr)), "epochs_run": len(trainer.history)}) + "\n")
        if progress:
            elapsed = time.perf_counter() - t_start
            metric = card["metrics"].get("mae", card["metrics"].get("roc_auc"))
            log(f"[{k + 1}/{n_jobs}] {name}: {seconds:.1f} s, n_train={len(y_tr)}, "
                f"{'mae' if 'mae' in card['metrics'] else 'auc'}={metric if metric is None else round(metric, 4)}, elapsed {elapsed / 60:.1f} min")
    names += _build_structure_sources(out, data_dir, chosen_structure, seeds, structure_config, threads, progress, log,
                                      len(jobs), n_jobs, t_start)
    return names


def _build_structure_sources(out: Path, data_dir: Path, chosen: Sequence[Any], seeds: Sequence[int], config: Any, threads: int,
                             progress: bool, log: Callable[[str], None], done: int, n_jobs: int, t_start: float) -> List[str]:
    """The structure half of :func:`build`: one CGCNN per (structure source, seed), resumable by recipe hash."""
    from .structure import (
        StructureBuildConfig,
        build_structure_task,
        structure_model_name,
        structure_recipe_sha256,
    )

    config = config if config is not None else StructureBuildConfig()
    names: List[str] = []
    file_hash: Dict[str, str] = {}
    k = done
    for seed in seeds:
        for task in chosen:
            k += 1
            name = structure_model_name(task, seed)
            if task.file not in file_hash:
                file_hash[task.file] = _safeio.sha256_file(data_dir / task.file)
            recipe = structure_recipe_sha256(task, seed, config, file_hash[task.file])
            if _already_built(out / name / CARD_FILE, recipe):
                names.append(name)
                continue
            t0 = time.perf_counter()
            directory = build_structure_task(task, data_dir, seed, config, out, recipe)
            seconds = time.perf_counter() - t0
            card = _safeio.read_json(directory / CARD_FILE)
            names.append(name)
            with open(out / "build_log.jsonl", "a") as fh:
                fh.write(json.dumps({"name": name, "seconds": round(seconds, 2), "threads": threads,
                                     "n_train": card["source"]["n_rows_train"], "epochs_run": card["training"]["epochs_run"]}) + "\n")
            if progress:
                m = card["metrics"]
                log(f"[{k}/{n_jobs}] {name}: {seconds:.1f} s, n_train={card['source']['n_rows_train']}, mae={round(m['mae'], 4)} "
                    f"(mean predictor {round(m['mean_predictor_mae'], 4)}), elapsed {(time.perf_counter() - t_start) / 60:.1f} min")
    return names
