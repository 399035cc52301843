#!/usr/bin/env python
"""GlobalSymmetryFeatures: matxfer (moyo, Rust) vs matminer (spglib through pymatgen's
SpacegroupAnalyzer), on the shared JSON-lines structure sets.

- matxfer: ``matxfer.structures.global_symmetry_features(batch)`` on the whole set (structures
  already parsed into a ``StructureBatch``), best of ``--repeat``, at all cores and at one thread.
- matminer: ``GlobalSymmetryFeatures().featurize(structure)`` on the first ``--matminer-n``
  structures of each set (pymatgen ``Structure`` objects built outside the timer), timed once.

Agreement: the five features compared row by row on the structures both ran; ratios are per
structure (matminer seconds per structure / matxfer seconds per structure).

Usage::

    python benches/global_symmetry.py --matminer-n 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATXFER_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))  # matminer's row layout is the parity test's

from tests.test_global_symmetry import feature_row  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matminer-n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from matminer.featurizers.structure import GlobalSymmetryFeatures

    from matxfer.structures import global_symmetry_features, read_structures

    featurizer = GlobalSymmetryFeatures()
    print(f"{'set':<38}{'n':>6}{'matxfer s':>11}{'1 thread s':>11}{'matminer n':>11}{'matminer s':>11}{'agree':>8}{'x all':>8}{'x 1 thr':>9}")
    totals = [0, 0.0, 0.0, 0, 0.0, 0]
    for path in sorted((SHARED / "structures").glob("*.jsonl*")):
        batch = read_structures(path)
        global_symmetry_features(batch.select(range(min(len(batch), 10))))
        times = {}
        for label, threads in (("all", None), ("one", 1)):
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ours = global_symmetry_features(batch, n_threads=threads)
                best = min(best, time.perf_counter() - t0)
            times[label] = best
        m = min(len(batch), args.matminer_n)
        structures = [batch.to_pymatgen(i) for i in range(m)]
        agree = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            reference = [featurizer.featurize(s) for s in structures]
            t_ref = time.perf_counter() - t0
        for i, ref in enumerate(reference):
            mine = feature_row(ours, i)
            agree += mine == ref
        per_ref = t_ref / m
        n = len(batch)
        print(
            f"{path.name:<38}{n:>6}{times['all']:>11.3f}{times['one']:>11.3f}{m:>11}{t_ref:>11.2f}"
            f"{agree / m:>8.3f}{per_ref / (times['all'] / n):>8.0f}{per_ref / (times['one'] / n):>9.0f}"
        )
        totals[0] += n
        totals[1] += times["all"]
        totals[2] += times["one"]
        totals[3] += m
        totals[4] += t_ref
        totals[5] += agree
    n, t_all, t_one, m, t_ref, agree = totals
    per_ref = t_ref / m
    print(
        f"{'total':<38}{n:>6}{t_all:>11.3f}{t_one:>11.3f}{m:>11}{t_ref:>11.2f}"
        f"{agree / m:>8.3f}{per_ref / (t_all / n):>8.0f}{per_ref / (t_one / n):>9.0f}"
    )


if __name__ == "__main__":
    main()
