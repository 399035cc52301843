"""The ward2017 structure preset: matxfer against matminer 0.10.1, in one run.

    python benches/ward2017.py                        # whole perov_5, MP piezoelectric, MP phonon/dielectric
    python benches/ward2017.py --matminer-structures 10 --only perov5_valtest_cdvae.jsonl

matxfer featurizes each whole dataset in one call (``n_threads=1`` and all cores), best of
``--repeat``. matminer (the six featurizers of the preset: SiteStatsFingerprint
CoordinationNumber_ward-prb-2017 and LocalPropertyDifference_ward-prb-2017,
StructuralHeterogeneity, ChemicalOrdering, MaximumPackingEfficiency, GlobalSymmetryFeatures, one
structure after the other as ``MultipleFeaturizer.featurize`` does, with matminer's own
nearest-neighbor cache) takes seconds per structure, so it is timed on the first
``--matminer-structures`` structures of each set. The ratio is per structure: matminer's mean
time on its subset against matxfer's on the same subset (one call) and on the whole set. The
subset's values are compared too: the largest relative difference over the 128 Voronoi
features, and the rows whose symmetry columns differ (moyo versus spglib, see
docs/structures.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from matxfer.structures import featurize_structures, read_structures

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
SETS = ["perov5_valtest_cdvae.jsonl", "mp_piezoelectric_matminer.jsonl", "mp_phonon_dielectric_matminer.jsonl"]


def best(batch, repeat, **kwargs):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = featurize_structures(batch, "ward2017", errors="nan", **kwargs)
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def matminer_rows(batch):
    """matminer's rows (crystal_system left out) and the seconds it took."""
    from matminer.featurizers.structure import (
        ChemicalOrdering,
        GlobalSymmetryFeatures,
        MaximumPackingEfficiency,
        SiteStatsFingerprint,
        StructuralHeterogeneity,
    )

    featurizers = [
        SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017"),
        SiteStatsFingerprint.from_preset("LocalPropertyDifference_ward-prb-2017"),
        StructuralHeterogeneity(),
        ChemicalOrdering(),
        MaximumPackingEfficiency(),
        GlobalSymmetryFeatures(),
    ]
    drop = [name for f in featurizers for name in f.feature_labels()].index("crystal_system")
    structures = [batch.to_pymatgen(k) for k in range(len(batch))]
    rows = []
    t = time.perf_counter()
    for s in structures:
        row = [value for f in featurizers for value in f.featurize(s)]
        del row[drop]
        rows.append(row)
    return np.array(rows, dtype=float), time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None, help="comma-separated dataset file names")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--matminer-structures", type=int, default=20, help="structures of each set matminer runs on")
    args = parser.parse_args()
    import matminer

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, matminer {matminer.__version__}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other users share this machine)")
    print(
        "| dataset | structures | sites | matxfer 1 thread (s) | matxfer all (s) | matminer subset (structures / sites) "
        "| matminer per structure (s) | matxfer per structure, same subset, 1 thread (ms) | ratio same subset "
        "| ratio whole set 1 thread | ratio whole set all threads | largest rel. difference (Voronoi features) | symmetry rows differing |"
    )
    print("|" + "---|" * 13)
    for name in args.only.split(",") if args.only else SETS:
        batch = read_structures(DATA / "structures" / name)
        t1, whole = best(batch, args.repeat, n_threads=1)
        tn, _ = best(batch, args.repeat)
        sub = batch.select(range(min(len(batch), args.matminer_structures)))
        t_sub, mine = best(sub, args.repeat, n_threads=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, t_mm = matminer_rows(sub)
        per_mm = t_mm / len(sub)
        voronoi = slice(0, 128)
        scale = np.maximum(np.abs(theirs[:, voronoi]), 1e-3)
        rel = np.nanmax(np.abs(mine.values[:, voronoi] - theirs[:, voronoi]) / scale)
        sym_diff = int((mine.values[:, 128:] != theirs[:, 128:]).any(axis=1).sum())
        print(
            f"| {name} | {len(batch)} | {len(batch.numbers)} | {t1:.3f} | {tn:.3f} | {len(sub)} / {len(sub.numbers)} "
            f"| {per_mm:.2f} | {t_sub / len(sub) * 1e3:.3f} | {per_mm / (t_sub / len(sub)):,.0f}x "
            f"| {per_mm / (t1 / len(batch)):,.0f}x | {per_mm / (tn / len(batch)):,.0f}x | {rel:.1e} | {sym_diff} |",
            flush=True,
        )
        assert len(whole.rejected) == 0, whole.rejected[:3]
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
