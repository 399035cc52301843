"""Shared fixtures: the real public datasets in ../shared/data (see its MANIFEST.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MATXFER_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(path: str) -> Path:
    """Path of a file in the shared data folder; a missing folder is an error, not a skip, so the
    parity tests cannot pass vacuously."""
    p = SHARED_DATA / path
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: the tests need the shared datasets (set MATXFER_SHARED_DATA)")
    return p


def read_shared_table(path: str) -> pd.DataFrame:
    """A CSV of the shared data folder with formulas kept as text (the formula "NaN" is real);
    the test is skipped when the file is missing."""
    p = SHARED_DATA / path
    if not p.exists():
        pytest.skip(f"shared data not found at {p}")
    return pd.read_csv(p, keep_default_na=False, na_values=[""], dtype={"formula": str})


def read_formulas(path: str) -> list[str]:
    # keep_default_na=False: the formula "NaN" (sodium nitride) is real data.
    return pd.read_csv(shared(path), keep_default_na=False, dtype={"formula": str})["formula"].tolist()


@pytest.fixture(scope="session")
def mp_gap_formulas() -> list[str]:
    return read_formulas("composition/dft/mp_gap_matbench.csv")


@pytest.fixture(scope="session")
def expt_gap_formulas() -> list[str]:
    return read_formulas("composition/experimental/expt_gap_matbench.csv")


# Crystal structures (tests/test_structures*.py, test_neighbors.py, test_graphs.py, ...).
STRUCTURES = SHARED_DATA.resolve() / "structures"
CIFS = SHARED_DATA.resolve() / "cif"


@pytest.fixture(scope="session")
def shared_structures() -> Path:
    if not STRUCTURES.is_dir():
        raise FileNotFoundError(f"{STRUCTURES} not found: the tests need the shared datasets (set MATXFER_SHARED_DATA)")
    return STRUCTURES
