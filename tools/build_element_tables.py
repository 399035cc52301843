"""Regenerate the element tables embedded in rust/matxfer-core/data/elements/.

Run from the repository root with the `bench` extra installed (matminer provides the Magpie
tables).  The tables are facts (numbers per element); the provenance of every table and column is
documented in rust/matxfer-core/data/elements/PROVENANCE.md.

Format of every output CSV: header `Z,symbol,<column...>`, then exactly 118 rows for Z = 1..118,
values written as in the source (no re-rounding), an empty cell where the source has no value.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "rust" / "matxfer-core" / "data" / "elements"


def symbols() -> list[str]:
    from pymatgen.core.periodic_table import Element

    return [Element.from_Z(z).symbol for z in range(1, 119)]


def write_table(name: str, columns: list[str], rows: list[list[str]]) -> None:
    assert len(rows) == 118, name
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["Z", "symbol", *columns])
        for z, (sym, row) in enumerate(zip(symbols(), rows), start=1):
            assert len(row) == len(columns), (name, z)
            w.writerow([z, sym, *row])


def magpie() -> None:
    import matminer

    src = Path(os.path.dirname(matminer.__file__)) / "utils" / "data_files" / "magpie_elementdata"
    skip = {"OxidationStates", "IonizationEnergies"}
    names = sorted(p.stem for p in src.glob("*.table") if p.stem not in skip)
    columns: dict[str, list[str]] = {}
    for name in names:
        lines = (src / f"{name}.table").read_text().splitlines()
        values = []
        for z in range(1, 119):
            # matminer reads line z-1 with float(); anything unreadable ("Missing", absent line) is NaN.
            try:
                text = lines[z - 1].strip()
                float(text)
            except (ValueError, IndexError):
                text = ""
            values.append(text)
        columns[name] = values
    write_table("magpie", names, [[columns[n][z] for n in names] for z in range(118)])

    lines = (src / "OxidationStates.table").read_text().splitlines()
    rows = []
    for z in range(1, 119):
        try:
            states = [str(int(float(t))) for t in lines[z - 1].split()]
        except IndexError:
            states = []
        rows.append([" ".join(states)])
    write_table("magpie_oxidation_states", ["oxidation_states"], rows)


if __name__ == "__main__":
    magpie()
