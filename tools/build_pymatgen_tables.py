"""Regenerate the pymatgen-derived element tables used by the `magpie_full` preset.

matminer's `IonProperty` reads Pauling electronegativity (`Element.X`) and
`Element.common_oxidation_states` from pymatgen; these two files freeze those values so matxfer
needs no pymatgen at run time. Same CSV format as tools/build_element_tables.py. Values are
written with repr(float) so they round-trip exactly.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "rust" / "matxfer-core" / "data" / "elements"


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
        ("pymatgen_electronegativity", "X", electronegativity),
        ("pymatgen_common_oxidation_states", "oxidation_states", oxidation),
    ]:
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["Z", "symbol", header])
            w.writerows(rows)


if __name__ == "__main__":
    main()
