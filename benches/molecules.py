"""Molecule descriptor throughput on the shared QM9 SMILES: matxfer.molecules against a plain
single-threaded RDKit loop (parse + one call per molecule), in the same run.

    python benches/molecules.py                          # ECFP4 on all 133,885 QM9 SMILES, rdkit2d on 4,000
    python benches/molecules.py --rows 30000 --rows-2d 1000 --repeat 3   # the < 5 min quiet-machine check

Contenders (each round runs every contender once, in this order; a contender's figure is its best
round, so a load spike in one round does not decide the ratio)
  plain loop          Chem.MolFromSmiles + GetFingerprintAsNumPy / CalcMolDescriptors per molecule
  threads             matxfer, n_jobs=1: SMILES parsed in this process (the parser holds the GIL),
                      fingerprints by RDKit's GetFingerprints(numThreads=N) and one bit unpack
  processes, cold     matxfer, n_jobs=N, after shutdown_workers(): includes starting the pool
  processes, warm     matxfer, n_jobs=N with the persistent pool already running (every later
                      call in a session)
Every contender's output is checked equal to the plain loop's. matxfer's ECFP output is float32
(featurize's default; ``--dtype uint8`` gives the plain loop's type, a quarter of the memory), rdkit2d
float64.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=None, help="QM9 rows for ECFP (default: all)")
    parser.add_argument("--rows-2d", type=int, default=4000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2, help="rounds for ECFP")
    parser.add_argument("--repeat-2d", type=int, default=1, help="rounds for rdkit2d")
    parser.add_argument("--dtype", default="float32", help="ECFP output of matxfer: float32 (default) or uint8 (as the plain loop's)")
    args = parser.parse_args()

    from rdkit import Chem
    from rdkit.Chem import Descriptors
    from rdkit.Chem import rdFingerprintGenerator as fg

    import matxfer.molecules as mm

    smiles = pd.read_csv(DATA / "molecules" / "qm9_homo_lumo_gap.csv").smiles.tolist()
    if args.rows:
        smiles = smiles[: args.rows]
    sub = smiles[: args.rows_2d]
    gen = fg.GetMorganGenerator(radius=2, fpSize=2048)
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} (1/5/15 min) on {os.cpu_count()} cores")
    os.environ["MATXFER_NUM_THREADS"] = str(args.jobs)

    def plain_ecfp():
        return np.array([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles])

    def plain_2d():
        out = np.array([list(Descriptors.CalcMolDescriptors(Chem.MolFromSmiles(s)).values()) for s in sub], dtype=float)
        out[~np.isfinite(out)] = np.nan
        return out

    def cold(rows, preset):
        mm.shutdown_workers()
        return lambda: mm.featurize(rows, preset, n_jobs=args.jobs, dtype=kw(preset)).values

    def kw(preset):
        return args.dtype if preset == "ecfp" else None

    jobs = args.jobs
    suites = [
        (f"ECFP4 2048 ({args.dtype})", smiles, "ecfp", plain_ecfp, args.repeat, f"matxfer threads (GetFingerprints numThreads={jobs})"),
        ("rdkit2d (217)", sub, "rdkit2d", plain_2d, args.repeat_2d, "matxfer, one process"),
    ]
    rows = []
    for desc, data, preset, plain, repeat, one_label in suites:
        best: dict[str, float] = {}
        ref = None
        for _ in range(repeat):
            contenders = [
                ("plain RDKit loop", plain),
                (one_label, lambda data=data, preset=preset: mm.featurize(data, preset, n_jobs=1, dtype=kw(preset)).values),
                (f"matxfer processes ({jobs}), cold pool", None),
                (f"matxfer processes ({jobs}), warm pool", lambda data=data, preset=preset: mm.featurize(data, preset, n_jobs=jobs, dtype=kw(preset)).values),
            ]
            for label, fn in contenders:
                if fn is None:
                    fn = cold(data, preset)
                t, X = timed(fn)
                if ref is None:
                    ref = X
                elif preset == "rdkit2d":
                    np.testing.assert_allclose(X, ref, rtol=1e-12, equal_nan=True)
                else:
                    assert np.array_equal(X, ref), label
                best[label] = min(best.get(label, np.inf), t)
        rows += [(desc, len(data), label, t) for label, t in best.items()]
    mm.shutdown_workers()
    load1 = os.getloadavg()

    print("\n| descriptor | molecules | method | seconds (best round) | molecules/s | speed-up vs plain loop |")
    print("|---|---|---|---|---|---|")
    base: dict[str, float] = {}
    for desc, n, method, t in rows:
        base.setdefault(desc, t)
        print(f"| {desc} | {n:,} | {method} | {t:.2f} | {n / t:,.0f} | {base[desc] / t:.2f}x |")
    print(f"\nload average at end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")


if __name__ == "__main__":
    main()
