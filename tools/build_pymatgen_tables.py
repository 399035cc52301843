"""Regenerate the pymatgen-derived element tables.

matminer's `IonProperty` (the `magpie_full` preset) reads Pauling electronegativity (`Element.X`)
and `Element.common_oxidation_states` from pymatgen; `Composition.oxi_state_guesses` (the
`matxfer.oxidation` module) reads `icsd_oxidation_states`, `common_oxidation_states`,
`oxidation_states` and the ICSD occurrence probabilities of `analysis/icsd_bv.yaml`. These files
freeze those values so matxfer needs no pymatgen at run time. Same CSV format as tools/build_element_tables.py. Values are
written with repr(float) so they round-trip exactly.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "rust" / "matxfer-core" / "data" / "elements"


OXIDATION_GUESS_HEADER = "icsd_oxidation_states,common_oxidation_states,oxidation_states,occurrence"


def oxidation_guess_rows() -> list[list]:
    """Per element: the three state lists pymatgen's guesser may search, and `state:probability`
    for every state of those lists that has an entry in pymatgen's occurrence table, read through
    the very lookup the guesser uses (`Composition.oxi_prob.get(Species(el, o), 0)`)."""
    from pymatgen.core.composition import Composition
    from pymatgen.core.periodic_table import Element, Species

    Composition("NaCl").oxi_state_guesses()  # loads Composition.oxi_prob
    prob = Composition.oxi_prob
    rows = []
    for z in range(1, 119):
        el = Element.from_Z(z)
        lists = [tuple(el.icsd_oxidation_states), tuple(el.common_oxidation_states), tuple(el.oxidation_states)]
        for states in lists:
            assert all(s == int(s) and -128 <= s <= 127 for s in states), (el, states)
        occurrence = []
        for state in sorted({int(s) for states in lists for s in states}):
            key = Species(el.symbol, state)
            if key in prob:
                occurrence.append(f"{state}:{prob[key]!r}")
        rows.append([z, el.symbol, *(" ".join(str(int(s)) for s in states) for states in lists), " ".join(occurrence)])
    return rows


def main() -> None:
    from pymatgen.core.periodic_table import Element

    electronegativity, oxidation = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for elements without X
        for z in range(1, 119):
            el = Element.from_Z(z)
            x = el.X
            missing = x is None or x != x or x == 0  # matminer treats falsy values as missing
            electronegativity.append([z, el.symbol, "" if missing else repr(float(x))])
            oxidation.append([z, el.symbol, " ".join(str(int(s)) for s in el.common_oxidation_states)])
    for name, header, rows in [
        ("pymatgen_oxidation_guess", OXIDATION_GUESS_HEADER, oxidation_guess_rows()),
        ("pymatgen_electronegativity", "X", electronegativity),
        ("pymatgen_common_oxidation_states", "oxidation_states", oxidation),
    ]:
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["Z", "symbol", *header.split(",")])
            w.writerows(rows)


if __name__ == "__main__":
    main()
