"""Full parity sweep of matxfer's magpie presets against matminer on every formula of the shared
mp_gap (106,113 rows) and expt_gap (4,604 rows) sets. Too slow for the test suite (matminer runs at
a few hundred formulas/s); the suite checks a fixed 5k subset. Prints one line per (dataset, preset).

    python benches/parity_matminer.py [--presets magpie magpie_full] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import matxfer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "composition"
SETS = {"mp_gap": DATA / "dft" / "mp_gap_matbench.csv", "expt_gap": DATA / "experimental" / "expt_gap_matbench.csv"}


def _featurizer(preset: str):
    from matminer.featurizers.base import MultipleFeaturizer
    from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital

    if preset == "magpie":
        return ElementProperty.from_preset("magpie")
    return MultipleFeaturizer([Stoichiometry(), ElementProperty.from_preset("magpie"), ValenceOrbital(), IonProperty(fast=True)])


def _matminer_chunk(args):
    preset, formulas = args
    from pymatgen.core import Composition

    warnings.simplefilter("ignore")
    featurizer = _featurizer(preset)
    return np.array([featurizer.featurize(Composition(f)) for f in formulas], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", nargs="+", default=["magpie", "magpie_full"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{'dataset':<10}{'preset':<13}{'rows':>8}{'unique':>8}{'NaN mismatch':>14}{'max rel diff':>14}{'> 1e-9':>8}{'matminer s':>12}")
    for name, path in SETS.items():
        formulas = pd.read_csv(path, keep_default_na=False, dtype={"formula": str})["formula"].tolist()
        unique = sorted(set(formulas))
        for preset in args.presets:
            start = time.perf_counter()
            chunks = [unique[i : i + 2000] for i in range(0, len(unique), 2000)]
            with ProcessPoolExecutor(args.workers) as pool:
                reference = np.vstack(list(pool.map(_matminer_chunk, [(preset, c) for c in chunks])))
            seconds = time.perf_counter() - start
            got = matxfer.featurize(unique, preset).values
            nan_mismatch = int((np.isnan(got) != np.isnan(reference)).sum())
            finite = np.isfinite(reference)
            err = np.abs(got - reference)
            rel = np.where(finite & (err > 1e-12), err / np.maximum(np.abs(reference), 1e-300), 0.0)
            print(
                f"{name:<10}{preset:<13}{len(formulas):>8}{len(unique):>8}{nan_mismatch:>14}{rel.max():>14.2e}{int((rel > 1e-9).sum()):>8}{seconds:>12.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
