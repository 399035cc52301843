"""Small real datasets shipped with matxfer (see ``matxfer/data/README.md`` for sources)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["dataset_path", "load_expt_gap"]

_FILES = {"expt_gap": "expt_gap_matbench.csv"}


def dataset_path(name: str) -> Path:
    """Path of a shipped dataset file (``"expt_gap"``)."""
    if name not in _FILES:
        raise KeyError(f"unknown dataset {name!r}; shipped: {', '.join(_FILES)}")
    return Path(str(resources.files("matxfer") / "data" / _FILES[name]))


def load_expt_gap():
    """matbench expt_gap (4,604 experimental band gaps, eV) as a pandas DataFrame.

    Read with ``keep_default_na=False`` so formulas such as ``NaN`` (sodium nitride) stay strings.
    """
    import pandas as pd

    return pd.read_csv(dataset_path("expt_gap"), keep_default_na=False, na_values={"band_gap_expt_eV": [""]})
