"""Molecule descriptor throughput on the shared QM9 SMILES: matxfer.molecules against a plain
single-threaded RDKit loop (parse + one call per molecule), in the same run.

    python benches/molecules.py                 # ECFP4 on all 133,885 QM9 SMILES, rdkit2d on 4,000
    python benches/molecules.py --rows 20000 --rows-2d 1000

Contenders
  plain loop        Chem.MolFromSmiles + GetFingerprintAsNumPy / CalcMolDescriptors per molecule
  threads           matxfer, n_jobs=1: SMILES parsed in this process, fingerprints by RDKit's
                    GetFingerprints(numThreads=N) and one vectorised bit unpack
  processes         matxfer, n_jobs=N: contiguous chunks parsed and featurized in N worker processes
                    (forkserver), bits sent back packed
Every contender's output is checked equal to the plain loop's.
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


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=None, help="QM9 rows for ECFP (default: all)")
    parser.add_argument("--rows-2d", type=int, default=4000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from rdkit import Chem
    from rdkit.Chem import Descriptors
    from rdkit.Chem import rdFingerprintGenerator as fg

    import matxfer.molecules as mm

    smiles = pd.read_csv(DATA / "molecules" / "qm9_homo_lumo_gap.csv").smiles.tolist()
    if args.rows:
        smiles = smiles[: args.rows]
    gen = fg.GetMorganGenerator(radius=2, fpSize=2048)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    rows = []

    def plain_ecfp():
        return np.array([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles])

    t_plain, ref = best_of(plain_ecfp, args.repeat)
    rows.append(("ECFP4 2048", len(smiles), "plain RDKit loop", t_plain))
    os.environ["MATXFER_NUM_THREADS"] = str(args.jobs)
    t, X = best_of(lambda: mm.featurize(smiles, "ecfp", n_jobs=1).values, args.repeat)
    assert np.array_equal(X, ref)
    rows.append(("ECFP4 2048", len(smiles), f"matxfer threads ({args.jobs})", t))
    t, X = best_of(lambda: mm.featurize(smiles, "ecfp", n_jobs=args.jobs).values, args.repeat)
    assert np.array_equal(X, ref)
    rows.append(("ECFP4 2048", len(smiles), f"matxfer processes ({args.jobs})", t))

    sub = smiles[: args.rows_2d]
    funcs = [f for _, f in Descriptors._descList]

    def plain_2d():
        out = np.array([list(Descriptors.CalcMolDescriptors(Chem.MolFromSmiles(s)).values()) for s in sub], dtype=float)
        out[~np.isfinite(out)] = np.nan
        return out

    t_plain2, ref2 = best_of(plain_2d, 1)
    assert ref2.shape[1] == len(funcs)
    rows.append(("rdkit2d (217)", len(sub), "plain RDKit loop", t_plain2))
    t, X = best_of(lambda: mm.featurize(sub, "rdkit2d", n_jobs=1).values, 1)
    np.testing.assert_allclose(X, ref2, rtol=1e-12, equal_nan=True)
    rows.append(("rdkit2d (217)", len(sub), "matxfer, one process", t))
    t, X = best_of(lambda: mm.featurize(sub, "rdkit2d", n_jobs=args.jobs).values, 1)
    np.testing.assert_allclose(X, ref2, rtol=1e-12, equal_nan=True)
    rows.append(("rdkit2d (217)", len(sub), f"matxfer processes ({args.jobs})", t))

    print("\n| descriptor | molecules | method | seconds | molecules/s | speed-up vs plain loop |")
    print("|---|---|---|---|---|---|")
    base = {}
    for desc, n, method, t in rows:
        base.setdefault(desc, t)
        print(f"| {desc} | {n:,} | {method} | {t:.2f} | {n / t:,.0f} | {base[desc] / t:.2f}x |")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
