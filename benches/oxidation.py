#!/usr/bin/env python
"""Oxidation-state guessing: matxfer vs pymatgen ``Composition.oxi_state_guesses()``.

Both see the same fixed seeded sample (``--n``, seed ``--seed``) of the distinct formula strings
of every shared composition dataset (``../shared/data/composition/*/*.csv*``, column
``formula``).

- pymatgen (the reference): ``Composition(f)`` is built outside the timer; the time is the sum
  of the ``comp.oxi_state_guesses()`` calls (default arguments), each under a ``--timeout``
  second alarm (a call over it counts as a timeout and is listed). Formulas whose pymatgen
  search is estimated above ``--max-cost`` Python steps (multisets x atoms + product of the
  per-element totals; organics such as ``C64H164O12Si8Sn8`` take minutes) are not run and are
  listed: the timing would be dominated by them.
- matxfer: ``matxfer.oxidation.guess(formulas, all_guesses=True, errors="none")`` on the whole
  list (end to end: list packing, search, building the Python dicts), best of ``--repeat``
  after a warm-up, at one thread and at all cores; also the best-guess-only call.

Parity: for every formula that both parsers read into the same element amounts (in the same
order), the whole tuple of guesses (keys, values and order) must be identical; every
difference is printed with its category. Rows matxfer refuses as too large
(``too_many_combinations``) are not sent to pymatgen and are listed.

Usage::

    python benches/oxidation.py --n 20000
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the formula pool and pymatgen's cost estimate are the parity test's

from tests.test_oxidation import pymatgen_cost, shared_formulas  # noqa: E402


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--max-cost", type=float, default=3e6, help="skip (and list) formulas whose pymatgen search is longer")
    args = ap.parse_args()

    from pymatgen.core import Composition

    import matxfer
    from matxfer import oxidation

    pool = shared_formulas()
    sample = random.Random(args.seed).sample(pool, min(args.n, len(pool)))
    print(f"pool: {len(pool)} distinct shared formulas; sample: {len(sample)} (seed {args.seed})")

    # matxfer first (its verdicts decide which rows pymatgen is asked to run).
    oxidation.guess(sample[:100], all_guesses=True, errors="none")
    timings = {}
    for label, kwargs in [
        ("matxfer all guesses, all cores", dict(all_guesses=True)),
        ("matxfer all guesses, 1 thread", dict(all_guesses=True, n_threads=1)),
        ("matxfer best guess, all cores", dict()),
    ]:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = oxidation.guess(sample, errors="none", **kwargs)
            best = min(best, time.perf_counter() - t0)
        timings[label] = best
        if label.startswith("matxfer all guesses, all"):
            ours = result
    rejected = {r.index: r for r in ours.rejected}

    signal.signal(signal.SIGALRM, _alarm)
    reference_time = 0.0
    compared = identical = 0
    differences, parser_differences, too_big, timeouts, expensive, both_refuse = [], [], [], [], [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, formula in enumerate(sample):
            try:
                comp = Composition(formula)
                amounts = comp.get_el_amt_dict()
            except Exception:  # noqa: BLE001 - pymatgen cannot read it: not a shared formula
                continue
            mine_amounts = None
            try:
                mine_amounts = matxfer.parse_formula(formula)
            except ValueError:
                pass
            if mine_amounts is None or list(mine_amounts.items()) != list(amounts.items()):
                parser_differences.append(formula)
                continue
            if i in rejected and rejected[i].reason.startswith("too_many"):
                too_big.append(formula)
                continue
            if pymatgen_cost(amounts) > args.max_cost:
                expensive.append(formula)
                continue
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            t0 = time.perf_counter()
            try:
                reference = [list(g.items()) for g in comp.oxi_state_guesses()]
                kind = "ok"
            except ValueError as e:
                reference, kind = str(e), "error"
            except Timeout:
                timeouts.append(formula)
                continue
            finally:
                reference_time += time.perf_counter() - t0
                signal.setitimer(signal.ITIMER_REAL, 0)
            compared += 1
            if kind == "error":
                if i in rejected and rejected[i].reason.startswith("non_integer_amount"):
                    identical += 1
                    both_refuse += 1
                else:
                    differences.append((formula, "pymatgen refuses, matxfer answers", reference))
                continue
            mine = None if i in rejected else [list(g.items()) for g in ours[i]]
            if mine == reference:
                identical += 1
            else:
                differences.append((formula, "different guesses", (mine or [])[:2], reference[:2]))

    print(f"\ncompared {compared} formulas read alike by both parsers: {identical} identical "
          f"({100 * identical / max(compared, 1):.3f} %), of which {both_refuse} non-integer formulas refused by both")
    print(f"parser differences (not compared): {len(parser_differences)}: {parser_differences[:20]}")
    print(f"refused by matxfer as too large (not run in pymatgen): {len(too_big)}: {too_big[:20]}")
    print(f"pymatgen search longer than --max-cost={args.max_cost:g} steps (not run): {len(expensive)}: {expensive[:20]}")
    print(f"pymatgen timeouts (> {args.timeout} s): {len(timeouts)}: {timeouts}")
    for d in differences:
        print("DIFFERENCE", *d)
    print(f"\n{'tool':<40}{'seconds':>12}{'formulas/s':>14}{'vs pymatgen':>14}")
    print(f"{'pymatgen oxi_state_guesses (summed calls)':<40}{reference_time:>12.3f}{compared / reference_time:>14.0f}{1:>14.1f}")
    for label, t in timings.items():
        print(f"{label:<40}{t:>12.4f}{len(sample) / t:>14.0f}{reference_time / t * len(sample) / max(compared, 1):>14.0f}")
    print("(ratios per formula: pymatgen seconds per compared formula / matxfer seconds per formula)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
