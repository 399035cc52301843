"""Oxidation-state guesses: parity with pymatgen's ``Composition.oxi_state_guesses()`` on a fixed
seeded sample of the shared formulas (every guess, in pymatgen's order, bit for bit), and the
error rules. The larger sweep with timings is ``benches/oxidation.py``."""

from __future__ import annotations

import gzip
import random
import warnings

import pandas as pd
import pytest

import matxfer
from matxfer import oxidation
from tests.conftest import SHARED_DATA

N_SAMPLE = 1500
SEED = 14
#: Formulas whose pymatgen search is longer (a second and more each) are left to the bench.
MAX_PYMATGEN_COST = 200_000


def shared_formulas() -> list[str]:
    """Every distinct formula string of the shared composition datasets, sorted."""
    pool: set[str] = set()
    for path in sorted((SHARED_DATA / "composition").glob("*/*.csv*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            frame = pd.read_csv(f, keep_default_na=False, dtype=str)
        if "formula" in frame.columns:
            pool.update(frame["formula"])
    assert len(pool) > 100_000, "the shared composition datasets are missing"
    return sorted(pool)


def pymatgen_cost(amounts: dict[str, float]) -> float:
    """Python steps pymatgen's guesser takes: every multiset of states per element (tuples of
    ``n``), then the product of the per-element totals."""
    from math import comb, prod

    from pymatgen.core import Element

    multisets, product = 0.0, []
    for el, n in amounts.items():
        states = Element(el).icsd_oxidation_states or Element(el).common_oxidation_states
        if n != int(n) or not states:
            return 0.0
        multisets += comb(int(n) + len(states) - 1, len(states) - 1) * n
        product.append(int(n) * (max(states) - min(states)) + 1)
    return multisets + prod(product)


def pymatgen_guesses(formula: str):
    """pymatgen's answer: ('ok', [guess items...]) or ('error', message) or None if the formula
    is read differently by the two parsers (compared separately)."""
    from pymatgen.core import Composition

    comp = Composition(formula)
    try:
        return "ok", [list(g.items()) for g in comp.oxi_state_guesses()]
    except ValueError as e:
        return "error", str(e)


def test_parity_with_pymatgen_on_shared_formulas():
    pytest.importorskip("pymatgen")
    from pymatgen.core import Composition

    sample = random.Random(SEED).sample(shared_formulas(), N_SAMPLE)
    ours = oxidation.guess(sample, all_guesses=True, errors="none")
    assert len(ours) == N_SAMPLE
    rejected = {r.index: r for r in ours.rejected}
    compared = differences = 0
    parser_differences, expensive = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, formula in enumerate(sample):
            try:
                amounts = Composition(formula).get_el_amt_dict()
            except Exception:  # noqa: BLE001 - pymatgen cannot read it: not a shared formula
                assert i in rejected, formula
                continue
            if i in rejected and rejected[i].reason.startswith(("unknown_element", "unexpected_character")):
                parser_differences.append(formula)
                continue
            if matxfer.parse_formula(formula) != amounts or list(matxfer.parse_formula(formula)) != list(amounts):
                parser_differences.append(formula)
                continue
            if pymatgen_cost(amounts) > MAX_PYMATGEN_COST:
                expensive.append(formula)
                continue
            kind, reference = pymatgen_guesses(formula)
            compared += 1
            if kind == "error":
                assert i in rejected and rejected[i].reason.startswith("non_integer_amount"), (formula, reference)
                continue
            assert i not in rejected, (formula, rejected.get(i))
            mine = [list(g.items()) for g in ours[i]]
            if mine != reference:
                differences += 1
                print(formula, mine[:3], reference[:3])
    # The two parsers read a handful of strings differently (hydrate dots such as CuSO4.5H2O,
    # documented in tests/test_formula.py); everything else must agree exactly.
    assert len(parser_differences) <= N_SAMPLE // 200, parser_differences
    assert len(expensive) <= N_SAMPLE // 20, expensive
    assert compared >= N_SAMPLE * 0.97
    assert differences == 0


def test_best_guess_and_scores_match_all_guesses():
    formulas = ["Fe3O4", "LiFePO4", "NaCl", "Xe", "Mn2O3", "Co3O4"]
    best = oxidation.guess(formulas)
    every = oxidation.guess(formulas, all_guesses=True)
    for i in range(len(formulas)):
        if every[i]:
            assert best[i] == every[i][0]
            assert best.scores[i] == every.scores[i][0]
            assert every.scores[i] == sorted(every.scores[i], reverse=True)
        else:
            assert best[i] is None
    assert best[0] == {"Fe": 8 / 3, "O": -2.0}
    assert best[3] == {"Xe": 0.0}  # a single element is neutral (pymatgen's rule)
    assert oxidation.guess(["XeF2", "XeNa"])[1] is None  # xenon has no oxidation state
    assert oxidation.guess("NaCl")[0] == {"Na": 1.0, "Cl": -1.0}


def test_target_charge_and_all_oxi_states_follow_pymatgen():
    pytest.importorskip("pymatgen")
    from pymatgen.core import Composition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for formula in ["Fe2O3", "MnO2", "V2O5", "CuFeS2", "SO4", "NH4"]:
            for kwargs in ({"target_charge": -2}, {"target_charge": 1}, {"all_oxi_states": True}):
                reference = [list(g.items()) for g in Composition(formula).oxi_state_guesses(**kwargs)]
                mine = [list(g.items()) for g in oxidation.guess([formula], all_guesses=True, **kwargs)[0]]
                assert mine == reference, (formula, kwargs)


def test_errors_name_the_row():
    with pytest.raises(matxfer.FeaturizationError, match="row 1") as info:
        oxidation.guess(["NaCl", "Na0.5Cl0.5", "KCl"])
    assert info.value.index == 1
    with pytest.raises(matxfer.FormulaError, match="row 2"):
        oxidation.guess(["NaCl", "KCl", "Qq2"])
    result = oxidation.guess(["NaCl", "Na0.5Cl0.5", None, "C3000H2000O5"], errors="none")
    assert result[0] == {"Na": 1.0, "Cl": -1.0}
    assert result[1] is None and result[2] is None and result[3] is None
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejected] == [
        (1, "non_integer_amount"),
        (2, "null"),
        (3, "too_many_combinations"),
    ]
    with pytest.raises(matxfer.InvalidArgumentError):
        oxidation.guess(["NaCl"], errors="nan")
    with pytest.raises(matxfer.InvalidArgumentError):
        oxidation.guess(["NaCl"], max_work=0)


def test_thread_count_does_not_change_the_answer():
    formulas = random.Random(3).sample(shared_formulas(), 1500)
    one = oxidation.guess(formulas, all_guesses=True, errors="none", n_threads=1)
    two = oxidation.guess(formulas, all_guesses=True, errors="none", n_threads=2)
    assert one.guesses == two.guesses and one.scores == two.scores and one.rejected == two.rejected
