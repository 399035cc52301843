#!/usr/bin/env python
"""Where matxfer's global symmetry (moyo) and matminer's (spglib via pymatgen) differ, and why.

For every row of the chosen shared sets where the five ``GlobalSymmetryFeatures`` differ, prints
both rows and the evidence used in ``benches/RESULTS.md`` ("Why perov_5 and mlearn differ"), all on
the same arrays (lattice rows, fractional coordinates, atomic numbers):

- ``sg 0.02``: spglib's space group at symprec 0.02 (5 degrees), i.e. twice the tolerance;
- ``sg ang-1``: spglib at 0.01 with its own default angle check (``angle_tolerance=-1``);
- ``moyopy``: moyo's Python package at 0.01 with its default angle check, as
  ``number@symprec actually used`` (moyo lowers symprec when its operations do not form a group);
- ``moyopy 5deg``: moyopy at 0.01 with pymatgen's 5-degree angle tolerance.

Needs matminer and moyopy (``pip install moyopy``). Usage::

    python benches/global_symmetry_diff.py --n 600 perov5_valtest_cdvae.jsonl mlearn_elemental_alignn.jsonl.gz
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATXFER_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))  # matminer's row layout is the parity test's

from tests.test_global_symmetry import feature_row  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", help="file names under shared/data/structures")
    ap.add_argument("--n", type=int, default=600, help="first N structures of each set (0: all)")
    args = ap.parse_args()

    import moyopy
    import spglib
    from matminer.featurizers.structure import GlobalSymmetryFeatures

    from matxfer.structures import global_symmetry_features, read_structures

    featurizer = GlobalSymmetryFeatures()
    for name in args.sets:
        batch = read_structures(SHARED / "structures" / name)
        n = len(batch) if args.n <= 0 else min(args.n, len(batch))
        batch = batch.select(range(n))
        ours = global_symmetry_features(batch)
        n_diff = 0
        print(f"{name}: first {n}")
        print(
            f"{'row':>6} {'formula':<10}{'sites':>6}  {'matxfer':<34}{'matminer':<34}{'sg 0.02':>8}{'sg ang-1':>9}{'moyopy':>12}{'5deg':>6}"
        )
        for i in range(n):
            mine = feature_row(ours, i)
            s = batch.to_pymatgen(i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = featurizer.featurize(s)
            if mine == theirs:
                continue
            n_diff += 1
            numbers = [site.specie.Z for site in s]
            cell = (s.lattice.matrix, s.frac_coords, numbers)
            sg02 = spglib.get_symmetry_dataset(cell, symprec=0.02, angle_tolerance=5.0).number
            sg_default = spglib.get_symmetry_dataset(cell, symprec=0.01, angle_tolerance=-1.0).number
            mcell = moyopy.Cell(s.lattice.matrix.tolist(), s.frac_coords.tolist(), numbers)
            moyo = moyopy.MoyoDataset(mcell, symprec=0.01)
            moyo5 = moyopy.MoyoDataset(mcell, symprec=0.01, angle_tolerance=math.radians(5.0))
            print(
                f"{i:>6} {s.composition.reduced_formula:<10}{len(s):>6}  {str(mine):<34}{str(theirs):<34}"
                f"{sg02:>8}{sg_default:>9}{f'{moyo.number}@{moyo.symprec:g}':>12}{moyo5.number:>6}"
            )
        print(f"{name}: {n_diff} of {n} differ\n")


if __name__ == "__main__":
    main()
