"""Molecular source models in the model library (``modality: "molecule"``).

Same format as every library model (a directory with ``card.json`` and ``weights.safetensors``);
the card's ``descriptor`` names a :mod:`matxfer.molecules` preset and its settings::

    "descriptor": {"preset": "ecfp", "radius": 2, "n_bits": 1024, "counts": true,
                   "polymer": null, "strip_salts": false, "n_features": 1024,
                   "feature_names_sha256": "..."}

Loading checks the preset exists and still yields the recorded feature names (so a model built
with RDKit's 217 ``rdkit2d`` descriptors refuses to load under an RDKit with other ones).
``matxfer.library.load(name).predict(smiles)`` featurizes the SMILES with those settings (RDKit,
the ``rdkit`` extra) and evaluates the network in numpy; torch is only needed to build a model.

>>> from matxfer.library.molecule import build_molecule_model, build_qm9_gap
>>> build_qm9_gap()                         # -> qm9/homo_lumo_gap/ecfp/mlp in the user library
>>> import matxfer.library as lib
>>> lib.load("qm9/homo_lumo_gap/ecfp/mlp").predict(["CCO", "c1ccccc1"])   # Hartree
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..exceptions import ModelFormatError
from .model import LibraryModel

__all__ = [
    "MoleculeLibraryModel",
    "descriptor_card",
    "check_descriptor",
    "holdout_split",
    "build_molecule_model",
    "build_qm9_gap",
]

_SETTINGS = ("radius", "n_bits", "counts")
_DEFAULTS: Dict[str, Any] = {"radius": 2, "n_bits": 2048, "counts": False, "polymer": None, "strip_salts": False}


def _settings(descriptor: Dict[str, Any]) -> Dict[str, Any]:
    return {k: descriptor.get(k, v) for k, v in _DEFAULTS.items()}


def _names(descriptor: Dict[str, Any]) -> list:
    from .. import molecules as mm

    s = _settings(descriptor)
    return mm.feature_names(descriptor["preset"], **{k: s[k] for k in _SETTINGS})


def descriptor_card(preset: str, **settings: Any) -> Dict[str, Any]:
    """The ``descriptor`` entry of a molecule model's card: preset, settings, feature-name hash."""
    unknown = set(settings) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown molecule descriptor settings {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
    d: Dict[str, Any] = {"preset": preset, **_DEFAULTS, **settings}
    names = _names(d)
    d["n_features"] = len(names)
    d["feature_names_sha256"] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return d


def check_descriptor(descriptor: Any, card_path: Path) -> None:
    """Refuse a card whose molecule preset is unknown or yields other features than at training."""
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("preset"), str):
        raise ModelFormatError(card_path, "descriptor.preset is missing")
    try:
        names = _names(descriptor)
    except ImportError as err:
        raise ModelFormatError(card_path, f"molecule models need RDKit ({err})") from None
    except (ValueError, TypeError) as err:
        raise ModelFormatError(card_path, f"molecule descriptor {descriptor.get('preset')!r}: {err}") from None
    if hashlib.sha256("\n".join(names).encode()).hexdigest() != descriptor.get("feature_names_sha256"):
        raise ModelFormatError(
            card_path, f"molecule preset {descriptor['preset']!r} of this matxfer / RDKit yields other features "
            "than the model was trained on; rebuild the model"
        )


class MoleculeLibraryModel(LibraryModel):
    """A library model whose inputs are molecules: SMILES (list / array / pandas / polars column),
    RDKit ``Mol`` objects, an SDF path, or a descriptor array of the card's width."""

    _chunk_workers = False  # RDKit featurization runs in its own worker processes

    def featurize(self, inputs: Any, n_threads: Optional[int] = None, errors: str = "raise") -> np.ndarray:
        from .. import molecules as mm

        s = _settings(self.card["descriptor"])
        return mm.featurize(
            inputs, self.preset, errors=errors, n_jobs=n_threads, dtype=np.float32,
            polymer=s["polymer"], strip_salts=s["strip_salts"], **{k: s[k] for k in _SETTINGS},
        ).values


# -- building ----------------------------------------------------------------------------------------


def holdout_split(smiles: Sequence[str], test_fraction: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic hold-out by Bemis-Murcko scaffold: a molecule is a test row when the sha256 of
    its scaffold (its canonical SMILES if acyclic) falls in the lowest ``test_fraction`` of buckets,
    so molecules sharing a scaffold are on one side; independent of row order and of the seed."""
    from .. import molecules as mm

    mols = mm.read_molecules(list(smiles))
    scaffolds = mm.bemis_murcko_scaffolds(mols)
    canonical = mols.smiles(True)
    keys = [s or c for s, c in zip(scaffolds, canonical)]
    buckets = np.array([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 16**8 for k in keys])
    test = buckets < test_fraction
    return np.flatnonzero(~test), np.flatnonzero(test)


def _metrics(y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    err = pred - y
    ss = float(np.sum((y - y.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / ss if ss > 0 else float("nan"),
    }


def build_molecule_model(
    smiles: Sequence[str],
    y: Any,
    *,
    name: str,
    property_name: str,
    units: str,
    source: Dict[str, Any],
    preset: str = "ecfp",
    descriptor: Optional[Dict[str, Any]] = None,
    hidden: Sequence[int] = (256, 128),
    epochs: int = 30,
    batch_size: int = 512,
    max_train_rows: Optional[int] = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    library: Union[None, str, os.PathLike] = None,
    overwrite: bool = False,
    notes: str = "",
) -> Path:
    """Train a descriptor MLP on molecules and register it (needs torch and RDKit).

    The hold-out is :func:`holdout_split` (by scaffold); ``max_train_rows`` takes a seeded sample of
    the other rows. ``source`` is the card's source entry (``dataset``, ``file``, ``column``,
    ``license``, ``citation``, ...); the rows' sha256 and counts are filled in. Returns the model
    directory.
    """
    from .. import molecules as mm
    from ..transfer import default_source_config, pretrain_mlp
    from . import register
    from .model import rows_sha256

    smiles = list(smiles)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(smiles),) or not np.isfinite(y).all():
        raise ValueError(f"y must be {len(smiles)} finite values, one per SMILES")
    desc = descriptor_card(preset, **(descriptor or {}))
    s = _settings(desc)
    train, test = holdout_split(smiles, test_fraction)
    if max_train_rows is not None and len(train) > max_train_rows:
        train = np.sort(np.random.default_rng(seed).choice(train, max_train_rows, replace=False))
    rows = np.concatenate([train, test])
    X = mm.featurize([smiles[i] for i in rows], preset, polymer=s["polymer"], strip_salts=s["strip_salts"],
                     **{k: s[k] for k in _SETTINGS}).values
    X_tr, X_te = X[: len(train)], X[len(train) :]
    config = default_source_config(epochs=epochs, batch_size=batch_size, patience=max(3, epochs // 5), seed=seed)
    model = pretrain_mlp(X_tr, y[train], hidden=tuple(hidden), config=config)
    import torch

    with torch.no_grad():
        pred = model(torch.as_tensor(X_te, dtype=torch.float32)).numpy()[:, 0].astype(np.float64)
    card = {
        "name": name,
        "task": "regression",
        "modality": "molecule",
        "arch": "mlp",
        "property": {"name": property_name, "units": units},
        "descriptor": desc,
        "source": {
            **source,
            "n_rows_file": len(smiles),
            "n_rows_train": int(len(train)),
            "n_rows_test": int(len(test)),
            "rows_sha256": rows_sha256([smiles[i] for i in train], y[train]),
            "test_rows_sha256": rows_sha256([smiles[i] for i in test], y[test]),
            "split": f"hold-out by Bemis-Murcko scaffold: sha256(scaffold, or canonical SMILES if acyclic) bucket < {test_fraction:.0%}"
            + (f"; training rows: a seeded sample of at most {max_train_rows} of the rest" if max_train_rows else ""),
        },
        "training": {"epochs_max": epochs, "batch_size": batch_size, "loss": config.loss, "lr": config.lr,
                     "weight_decay": config.weight_decay, "patience": config.patience, "seed": seed,
                     "val_fraction": config.val_fraction, "optimizer": "AdamW"},
        "metrics": {"split": "hold-out (see source.split)", **_metrics(y[test], pred)},
        "notes": notes,
        "version": 1,
    }
    from .. import __version__

    card["matxfer_version"] = __version__
    return register(model, card, library=library, overwrite=overwrite)


def build_qm9_gap(
    data_dir: Union[None, str, os.PathLike] = None,
    *,
    n_bits: int = 1024,
    epochs: int = 30,
    max_train_rows: Optional[int] = None,
    library: Union[None, str, os.PathLike] = None,
    overwrite: bool = False,
) -> Path:
    """The QM9 HOMO-LUMO gap source (``qm9/homo_lumo_gap/ecfp/mlp``: ECFP4 counts, ``n_bits``, Hartree)
    from ``<data_dir>/molecules/qm9_homo_lumo_gap.csv`` (default: ``$MATXFER_SHARED_DATA`` or
    ``../shared/data``)."""
    import pandas as pd

    from .builder import default_data_dir

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    frame = pd.read_csv(root / "molecules" / "qm9_homo_lumo_gap.csv")
    return build_molecule_model(
        frame.smiles.tolist(), frame.homo_lumo_gap_hartree.to_numpy(float),
        name="qm9/homo_lumo_gap/ecfp/mlp", property_name="homo_lumo_gap", units="Hartree",
        source={"dataset": "qm9", "file": "molecules/qm9_homo_lumo_gap.csv", "column": "homo_lumo_gap_hartree",
                "citation": "Ramakrishnan et al., Sci. Data 1, 140022 (2014); Ruddigkeit et al., J. Chem. Inf. Model. 52, 2864 (2012)",
                "license": "QM9 (figshare); redistributed via MoleculeNet / KRICT-DATA EGCN without a licence file: check before shipping",
                "shippable": False},
        preset="ecfp", descriptor={"n_bits": n_bits, "counts": True}, epochs=epochs,
        max_train_rows=max_train_rows, library=library, overwrite=overwrite,
        notes="B3LYP/6-31G(2df,p) gap of the QM9 molecules (at most 9 heavy atoms C, N, O, F); "
        "a graph of bonds only (ECFP), no geometry.",
    )
