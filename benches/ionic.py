"""Ionic descriptors: matxfer against matminer/pymatgen, parity and speed in one run.

    python benches/ionic.py                       # defaults below
    python benches/ionic.py --ref-seconds 20 --formulas 5000

1. ``IonProperty()`` (matminer's default ``fast=False``, pymatgen ``oxi_state_guesses`` with the
   common states) on a seeded sample of the shared formulas (``--formulas``); matminer on the
   sample's first rows until ``--ref-seconds`` (formulas whose pymatgen search is longer than
   ``--max-cost`` Python steps are skipped there and counted), matxfer on the same rows and on
   the whole sample.
2. ``EwaldEnergy()`` with the states of ``add_oxidation_state_by_guess()`` (pymatgen decoration +
   ``EwaldSummation(acc_factor=4)``) on the whole perov_5, MP piezoelectric and MP
   phonon/dielectric sets for matxfer; pymatgen on the first structures until ``--ref-seconds``.
3. ``OrbitalFieldMatrix()`` likewise (matminer builds a 3x3x3 supercell per structure, ~1 s each).

Ratios are per row against matxfer timed on the same rows (best of ``--repeat``); the whole-set
matxfer time is printed alongside. Parity: identical rows (IonProperty), max relative difference
(Ewald, per structure), max |difference| / max |matminer row| (OFM).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the formula pool and cost estimate are the parity tests'

from tests.test_ionic import ion_property_cost  # noqa: E402
from tests.test_oxidation import shared_formulas  # noqa: E402

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
SETS = ["perov5_valtest_cdvae", "mp_piezoelectric_matminer", "mp_phonon_dielectric_matminer"]


def best(repeat, f):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def timed_subset(items, seconds, f):
    """Apply f to items in order until `seconds` have passed: (results, time, count)."""
    out, spent = [], 0.0
    for x in items:
        t = time.perf_counter()
        out.append(f(x))
        spent += time.perf_counter() - t
        if spent >= seconds:
            break
    return out, spent, len(out)


def ion_property(args, threads):
    from matminer.featurizers.composition import IonProperty
    from pymatgen.core import Composition

    import matxfer

    sample = random.Random(args.seed).sample(shared_formulas(), args.formulas)
    t_all, _ = best(args.repeat, lambda: matxfer.featurize(sample, preset="ion_property", errors="nan"))
    featurizer = IonProperty()
    rows, skipped = [], 0
    for f in sample:
        try:
            c = Composition(f)
        except Exception:  # noqa: BLE001
            continue
        if ion_property_cost(c.get_el_amt_dict()) > args.max_cost:
            skipped += 1
            continue
        rows.append((f, c))

    def ref_one(item):
        try:
            return featurizer.featurize(item[1])
        except ValueError:
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref, n = timed_subset(rows, args.ref_seconds, ref_one)
    subset = [f for f, _ in rows[:n]]
    t_sub, ours = best(args.repeat, lambda: matxfer.featurize(subset, preset="ion_property", errors="nan"))
    rejected = {r.index for r in ours.rejected}
    same = 0
    for i, r in enumerate(ref):
        if r is None:
            same += i in rejected
        elif i not in rejected and ours.values[i][0] == float(r[0]) and np.allclose(ours.values[i][1:], r[1:], rtol=1e-12, atol=0):
            same += 1
    print(
        f"| IonProperty() | {n} formulas (of {len(sample)}; {skipped} over the cost cap) | {same}/{n} identical "
        f"| {t_ref / n * 1e6:.1f} us | {t_sub / n * 1e6:.2f} us | **{t_ref / t_sub:.0f}x** | {len(sample)} rows in {t_all:.3f} s ({threads} threads) |"
    )


def load(name):
    from pymatgen.core import Lattice, Structure

    from matxfer.structures import read_structures

    batch = read_structures(DATA / "structures" / f"{name}.jsonl")
    with open(DATA / "structures" / f"{name}.jsonl") as f:
        records = [json.loads(line) for line in f]
    structs = [Structure(Lattice(r["lattice"]), r["species"], r["frac_coords"]) for r in records]
    return batch, structs


def subset_batch(batch, n):
    from matxfer.structures import StructureBatch

    end = int(batch.ptr[n])
    return StructureBatch(batch.lattices[:n], batch.frac_coords[:end], batch.numbers[:end], batch.pbc[:n], batch.ptr[: n + 1], batch.ids[:n])


def ewald(args, name, batch, structs):
    from pymatgen.analysis.ewald import EwaldSummation

    from matxfer.structures import ewald_energy

    t_all, _ = best(args.repeat, lambda: ewald_energy(batch))
    t1_all, _ = best(args.repeat, lambda: ewald_energy(batch, n_threads=1))

    def ref_one(s):
        d = s.copy()
        d.add_oxidation_state_by_guess()
        return EwaldSummation(d, acc_factor=4).total_energy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref, n = timed_subset(structs, args.ref_seconds, ref_one)
    sub = subset_batch(batch, n)
    t_sub, ours = best(args.repeat, lambda: ewald_energy(sub))
    ref = np.array(ref)
    rel = np.abs(ours.total - ref) / np.where(ref == 0, 1.0, np.abs(ref))
    print(
        f"| EwaldEnergy() {name} | {n} of {len(batch)} | max rel {rel.max():.1e} ({int(np.sum(ref == 0))} with no guess: 0) "
        f"| {t_ref / n * 1e3:.2f} ms | {t_sub / n * 1e6:.1f} us | **{t_ref / t_sub:.0f}x** | {len(batch)} in {t_all:.3f} s (1 thread {t1_all:.3f} s) |"
    )


def ofm(args, name, batch, structs):
    from matminer.featurizers.structure import OrbitalFieldMatrix

    from matxfer.structures import orbital_field_matrix

    t_all, _ = best(args.repeat, lambda: orbital_field_matrix(batch))
    t1_all, _ = best(args.repeat, lambda: orbital_field_matrix(batch, n_threads=1))
    featurizer = OrbitalFieldMatrix()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref, n = timed_subset(structs, args.ref_seconds, lambda s: featurizer.featurize(s.copy()))
    sub = subset_batch(batch, n)
    t_sub, (ours, _) = best(args.repeat, lambda: orbital_field_matrix(sub))
    ref = np.array(ref)
    err = (np.abs(ours - ref).max(axis=1) / np.abs(ref).max(axis=1)).max()
    print(
        f"| OrbitalFieldMatrix() {name} | {n} of {len(batch)} | max err {err:.1e} "
        f"| {t_ref / n * 1e3:.0f} ms | {t_sub / n * 1e6:.0f} us | **{t_ref / t_sub:.0f}x** | {len(batch)} in {t_all:.3f} s (1 thread {t1_all:.3f} s) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formulas", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ref-seconds", type=float, default=30.0, help="time given to the reference per row of the table")
    ap.add_argument("--max-cost", type=float, default=1e6)
    ap.add_argument("--only", choices=["ion", "ewald", "ofm"], nargs="*")
    args = ap.parse_args()
    threads = os.environ.get("MATXFER_NUM_THREADS", os.cpu_count())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("| descriptor | rows compared | parity | reference per row | matxfer per row | ratio | matxfer whole set |")
    print("|---|---|---|---|---|---|---|")
    only = set(args.only or ["ion", "ewald", "ofm"])
    if "ion" in only:
        ion_property(args, threads)
    for name in SETS:
        batch, structs = load(name)
        if "ewald" in only:
            ewald(args, name, batch, structs)
        if "ofm" in only:
            ofm(args, name, batch, structs)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
