#!/usr/bin/env python
"""Bond-valence oxidation states: matxfer ``oxidation.bond_valence_states`` vs pymatgen
``BVAnalyzer().get_valences(structure)`` (default arguments: symm_tol 0.1, max_radius 4,
distance_scale_factor 1.015, max_permutations 100,000) on the shared structure sets
(``../shared/data/structures``).

- pymatgen (the reference): the structures of each set in file order, each converted with
  ``batch.to_pymatgen(k)`` outside the timer, until ``--seconds`` of summed ``get_valences``
  time per set (each call under a ``--timeout`` second alarm; a timeout is listed). A
  ``ValueError`` is pymatgen's refusal. spglib's C-level warnings are silenced during the calls.
- matxfer: ``bond_valence_states(batch, errors="nan")`` on each whole set (end to end from the
  ``StructureBatch``), best of ``--repeat`` after a warm-up, at 1 and 2 threads; and at 1
  thread on the subset pymatgen ran, for a like-for-like ratio.

Agreement: on every structure pymatgen ran, the per-site states must be equal, or both must
refuse. Every difference is listed with its cause: when pymatgen with ``symm_tol=0`` and
matxfer with ``symprec=0`` agree, the cause is the symmetry orbits (moyo vs spglib grouping the
sites differently at the same tolerance); anything else is printed as "other".

Usage::

    python benches/bond_valence.py --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATXFER_SHARED_DATA", REPO.parent / "shared" / "data")) / "structures"
SETS = [
    "mp_piezoelectric_matminer.jsonl",
    "mp_phonon_dielectric_matminer.jsonl",
    "perov5_valtest_cdvae.jsonl",
    "mp_bulk_moduli100_megnet.jsonl",
    "jarvis_dft_2d_matminer.jsonl",
    "jarvis_sample50_alignn.jsonl",
    "carbon24_valtest_cdvae.jsonl",
    "mlearn_elemental_alignn.jsonl.gz",
    "pt_clusters_matdeeplearn.jsonl",
    "cromel_mp_examples.jsonl",
]


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


@contextlib.contextmanager
def quiet_stderr():
    """spglib prints failures of its exact-position search straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def pymatgen_states(structure, **kwargs):
    from pymatgen.analysis.bond_valence import BVAnalyzer

    try:
        return BVAnalyzer(**kwargs).get_valences(structure)
    except ValueError:
        return None


def best_time(batch, n_threads: int, repeat: int) -> float:
    """Best of ``repeat`` timed matxfer calls on ``batch`` after a warm-up."""
    from matxfer import oxidation

    oxidation.bond_valence_states(batch, errors="nan", n_threads=n_threads)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        oxidation.bond_valence_states(batch, errors="nan", n_threads=n_threads)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="summed pymatgen time per set")
    ap.add_argument("--timeout", type=float, default=60.0, help="pymatgen seconds per structure")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sets", nargs="*", default=SETS)
    args = ap.parse_args()

    from matxfer import oxidation
    from matxfer.structures import read_structures

    signal.signal(signal.SIGALRM, _alarm)
    rows, differences, timeouts = [], [], []
    for name in args.sets:
        batch = read_structures(SHARED / name)
        n = len(batch)
        whole = {t: best_time(batch, t, args.repeat) for t in (1, 2)}
        ours = oxidation.bond_valence_states(batch, errors="nan", n_threads=2)
        ref_time, ran, agree, answered = 0.0, 0, 0, 0
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")
            for k in range(n):
                if ref_time >= args.seconds:
                    break
                structure = batch.to_pymatgen(k)
                signal.setitimer(signal.ITIMER_REAL, args.timeout)
                t0 = time.perf_counter()
                try:
                    ref = pymatgen_states(structure)
                except Timeout:
                    timeouts.append((name, k))
                    continue
                finally:
                    ref_time += time.perf_counter() - t0
                    signal.setitimer(signal.ITIMER_REAL, 0)
                ran += 1
                mine = None if ours[k] is None else ours[k].tolist()
                answered += ref is not None
                if mine == ref:
                    agree += 1
                    continue
                flat = oxidation.bond_valence_states(batch.select([k]), symprec=0, errors="nan")[0]
                flat_ref = pymatgen_states(structure, symm_tol=0)
                cause = "symmetry orbits (moyo vs spglib)" if (None if flat is None else flat.tolist()) == flat_ref else "other"
                reason = "" if ours[k] is not None else next(r.reason for r in ours.rejected if r.index == k)
                differences.append((name, k, structure.composition.reduced_formula, ref, mine, reason, cause))
        subset = batch.select(range(ran))
        same = best_time(subset, 1, args.repeat) if ran else float("nan")
        rows.append((name, n, ran, answered, agree, ref_time, same, whole[1], whole[2], len(ours.rejected)))

    print(f"\n{'set':<36}{'structs':>8}{'pmg ran':>8}{'pmg ok':>7}{'agree':>7}{'pmg s':>8}{'mx s sub':>10}"
          f"{'x sub':>8}{'mx s 1t':>9}{'mx s 2t':>9}{'x 1t':>8}{'x 2t':>8}{'mx refused':>11}")
    tot = [0, 0, 0, 0]
    for name, n, ran, answered, agree, ref_time, same, t1, t2, refused in rows:
        per_ref = ref_time / max(ran, 1)
        print(f"{name:<36}{n:>8}{ran:>8}{answered:>7}{agree:>7}{ref_time:>8.2f}{same:>10.4f}{ref_time / same:>8.0f}"
              f"{t1:>9.4f}{t2:>9.4f}{per_ref / (t1 / n):>8.0f}{per_ref / (t2 / n):>8.0f}{refused:>11}")
        tot = [tot[0] + n, tot[1] + ran, tot[2] + agree, tot[3] + answered]
    print(f"\nagreement: {tot[2]} / {tot[1]} structures run in pymatgen ({100 * tot[2] / max(tot[1], 1):.3f} %), "
          f"{tot[3]} of them answered by pymatgen; {tot[0]} structures in the sets")
    print("columns: 'x sub' = pymatgen s / matxfer 1-thread s on the same subset; 'x 1t', 'x 2t' = pymatgen s per "
          "structure / matxfer s per structure on the whole set")
    print(f"pymatgen timeouts (> {args.timeout} s): {timeouts}")
    for d in differences:
        print("DIFFERENCE", *d)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
