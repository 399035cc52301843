"""Regenerate the element tables embedded in rust/matxfer-core/data/elements/.

Run from the repository root with the `bench` extra installed (matminer provides the Magpie,
CGCNN, MEGNet and matscholar tables; CBFV the mat2vec and Oliynyk tables; pymatgen the periodic
table) plus `pip install mendeleev` for the XenonPy-style table.  None of these is needed at run
time: the CSVs are committed and embedded in the Rust crate.  The tables are facts (numbers per
element); the provenance of every table and column is documented in
rust/matxfer-core/data/elements/PROVENANCE.md.

Format of every output CSV: header `Z,symbol,<column...>`, then exactly 118 rows for Z = 1..118,
values written as in the source (no re-rounding), an empty cell where the source has no value.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
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
        for z, (sym, row) in enumerate(zip(symbols(), rows, strict=True), start=1):
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


def _site_packages_file(module: str, *parts: str) -> Path:
    import importlib

    mod = importlib.import_module(module)
    return Path(os.path.dirname(mod.__file__)).joinpath(*parts)


def _raw_json(path: Path):
    # Keep every number as its source text: no float round trip, no re-rounding.
    with open(path) as f:
        return json.load(f, parse_float=str, parse_int=str)


def _cell(value) -> str:
    """Text of one value read from a Python/SQLite source (None/NaN -> empty = missing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if text == "":
        return ""
    float(text)  # must be a number
    return text


def _vector_table(name: str, dim: int, by_z: dict[int, list[str]]) -> None:
    rows = []
    for z in range(1, 119):
        vec = by_z.get(z)
        if vec is None:
            rows.append([""] * dim)
        else:
            assert len(vec) == dim, (name, z)
            rows.append([_cell(v) for v in vec])
    write_table(name, [f"{name}_{i}" for i in range(dim)], rows)


def cgcnn() -> None:
    """CGCNN one-hot atom features (Xie & Grossman 2018), as shipped in matminer; keys are Z."""
    data = _raw_json(_site_packages_file("matminer", "utils", "data_files", "cgcnn_atom_feature.json"))
    _vector_table("cgcnn", 92, {int(k): v for k, v in data.items()})


def megnet16() -> None:
    """MEGNet elemental embedding (Chen et al. 2019), as shipped in matminer.

    The file is a list of 95 vectors indexed by Z; index 0 is the unused/dummy row (matminer maps
    it to its "Dummy" element), so rows 1..94 are H..Pu.
    """
    data = _raw_json(
        _site_packages_file("matminer", "utils", "data_files", "megnet_elemental_embedding.json")
    )
    assert len(data) == 95
    _vector_table("megnet16", 16, {z: data[z] for z in range(1, len(data))})


def matscholar() -> None:
    """Matscholar word embeddings of the elements (Tshitoyan et al. 2019), keyed by symbol."""
    data = _raw_json(_site_packages_file("matminer", "utils", "data_files", "matscholar_els.json"))
    sym = symbols()
    unknown = set(data) - set(sym)
    assert not unknown, unknown
    _vector_table("matscholar", 200, {sym.index(s) + 1: v for s, v in data.items()})


def _cbfv_csv(file: str) -> tuple[list[str], dict[str, list[str]]]:
    path = _site_packages_file("CBFV", "element_properties", file)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[0] == "element", header[0]
    by_symbol = {r[0]: [c.strip() for c in r[1:]] for r in body if r}
    assert len(by_symbol) == len(body), file
    return header[1:], by_symbol


def mat2vec() -> None:
    """mat2vec element vectors (Tshitoyan et al. 2019) as shipped by CBFV, keyed by symbol."""
    header, data = _cbfv_csv("mat2vec.csv")
    assert header == [str(i) for i in range(200)], header[:5]
    sym = symbols()
    assert set(data) <= set(sym), set(data) - set(sym)
    _vector_table("mat2vec", 200, {sym.index(s) + 1: v for s, v in data.items()})


def oliynyk() -> None:
    """Oliynyk elemental property table as shipped by CBFV (column names kept, sanitised)."""
    header, data = _cbfv_csv("oliynyk.csv")
    columns = [re.sub(r"[,\s]+", "_", c.strip()) for c in header]
    assert len(set(columns)) == len(columns), columns
    sym = symbols()
    assert set(data) <= set(sym), set(data) - set(sym)
    rows = [[_cell(v) for v in data[s]] if s in data else [""] * len(columns) for s in sym]
    write_table("oliynyk", columns, rows)


# XenonPy-style table: (column, source, source field).  Sources:
#   mendeleev  - column of the `elements` table of the mendeleev package's SQLite database
#   mendeleev_ie - `ionizationenergies.ionization_energy` with ion_charge = 0 (first ionisation)
#   pymatgen   - key of pymatgen/core/periodic_table.json.gz
#   magpie     - matminer magpie_elementdata table (same text rules as `magpie()`)
#   z          - the atomic number itself
# Units and notes per column are in PROVENANCE.md.
XENONPY_COLUMNS: list[tuple[str, str, str]] = [
    ("atomic_number", "z", ""),
    ("atomic_radius", "mendeleev", "atomic_radius"),
    ("atomic_radius_rahm", "mendeleev", "atomic_radius_rahm"),
    ("atomic_volume", "magpie", "AtomicVolume"),
    ("atomic_weight", "mendeleev", "atomic_weight"),
    ("boiling_point", "pymatgen", "Boiling point"),
    ("bulk_modulus", "pymatgen", "Bulk modulus"),
    ("c6", "mendeleev", "c6"),
    ("c6_gb", "mendeleev", "c6_gb"),
    ("covalent_radius_cordero", "mendeleev", "covalent_radius_cordero"),
    ("covalent_radius_pyykko", "mendeleev", "covalent_radius_pyykko"),
    ("covalent_radius_pyykko_double", "mendeleev", "covalent_radius_pyykko_double"),
    ("covalent_radius_pyykko_triple", "mendeleev", "covalent_radius_pyykko_triple"),
    ("density", "mendeleev", "density"),
    ("dipole_polarizability", "mendeleev", "dipole_polarizability"),
    ("electron_affinity", "mendeleev", "electron_affinity"),
    ("electron_negativity", "pymatgen", "X"),
    ("en_allen", "mendeleev", "en_allen"),
    ("en_ghosh", "mendeleev", "en_ghosh"),
    ("en_pauling", "mendeleev", "en_pauling"),
    ("evaporation_heat", "mendeleev", "evaporation_heat"),
    ("first_ion_en", "mendeleev_ie", "ionization_energy"),
    ("fusion_enthalpy", "mendeleev", "fusion_heat"),
    ("gs_bandgap", "magpie", "GSbandgap"),
    ("gs_energy", "magpie", "GSenergy_pa"),
    ("gs_est_bcc_latcnt", "magpie", "GSestBCClatcnt"),
    ("gs_est_fcc_latcnt", "magpie", "GSestFCClatcnt"),
    ("gs_mag_moment", "magpie", "GSmagmom"),
    ("gs_volume_per", "magpie", "GSvolume_pa"),
    ("heat_capacity_mass", "mendeleev", "specific_heat_capacity"),
    ("heat_capacity_molar", "mendeleev", "molar_heat_capacity"),
    ("heat_of_formation", "mendeleev", "heat_of_formation"),
    ("hhi_p", "magpie", "HHIp"),
    ("hhi_r", "magpie", "HHIr"),
    ("icsd_volume", "magpie", "ICSDVolume"),
    ("lattice_constant", "mendeleev", "lattice_constant"),
    ("melting_point", "pymatgen", "Melting point"),
    ("mendeleev_number", "mendeleev", "mendeleev_number"),
    ("metallic_radius", "mendeleev", "metallic_radius"),
    ("molar_volume", "pymatgen", "Molar volume"),
    ("num_d_unfilled", "magpie", "NdUnfilled"),
    ("num_d_valence", "magpie", "NdValence"),
    ("num_f_unfilled", "magpie", "NfUnfilled"),
    ("num_f_valence", "magpie", "NfValence"),
    ("num_p_unfilled", "magpie", "NpUnfilled"),
    ("num_p_valence", "magpie", "NpValence"),
    ("num_s_unfilled", "magpie", "NsUnfilled"),
    ("num_s_valence", "magpie", "NsValence"),
    ("num_unfilled", "magpie", "NUnfilled"),
    ("num_valance", "magpie", "NValence"),
    ("period", "mendeleev", "period"),
    ("sound_velocity", "pymatgen", "Velocity of sound"),
    ("thermal_conductivity", "pymatgen", "Thermal conductivity"),
    ("vdw_radius", "mendeleev", "vdw_radius"),
    ("vdw_radius_alvarez", "mendeleev", "vdw_radius_alvarez"),
    ("vdw_radius_mm3", "mendeleev", "vdw_radius_mm3"),
    ("vdw_radius_uff", "mendeleev", "vdw_radius_uff"),
    ("Polarizability", "magpie", "Polarizability"),
]


def xenonpy() -> None:
    """A XenonPy-style elemental property table assembled from mendeleev, pymatgen and matminer."""
    import gzip
    import sqlite3

    # mendeleev: read its SQLite database directly (raw stored values).
    db = sqlite3.connect(_site_packages_file("mendeleev", "elements.db"))
    cur = db.execute("SELECT * FROM elements ORDER BY atomic_number")
    names = [d[0] for d in cur.description]
    mend = {r[names.index("atomic_number")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    ie1 = dict(
        db.execute(
            "SELECT atomic_number, ionization_energy FROM ionizationenergies WHERE ion_charge = 0"
        ).fetchall()
    )
    db.close()
    sym = symbols()
    assert all(mend[z]["symbol"] == sym[z - 1] for z in range(1, 119))

    # pymatgen periodic table, numbers kept as source text.
    with gzip.open(_site_packages_file("pymatgen.core", "periodic_table.json.gz"), "rt") as f:
        pmg = json.load(f, parse_float=str, parse_int=str)

    magpie_dir = _site_packages_file("matminer", "utils", "data_files", "magpie_elementdata")

    def magpie_column(table: str) -> list[str]:
        lines = (magpie_dir / f"{table}.table").read_text().splitlines()
        out = []
        for z in range(1, 119):
            try:
                text = lines[z - 1].strip()
                float(text)
            except (ValueError, IndexError):
                text = ""
            out.append(text)
        return out

    columns, data = [], []
    for column, source, field in XENONPY_COLUMNS:
        if source == "z":
            values = [str(z) for z in range(1, 119)]
        elif source == "mendeleev":
            values = [_cell(mend[z][field]) for z in range(1, 119)]
        elif source == "mendeleev_ie":
            values = [_cell(ie1.get(z)) for z in range(1, 119)]
        elif source == "pymatgen":
            values = [_cell(pmg.get(s, {}).get(field)) for s in sym]
        elif source == "magpie":
            values = magpie_column(field)
        else:
            raise ValueError(source)
        columns.append(column)
        data.append(values)
    write_table("xenonpy", columns, [[col[z] for col in data] for z in range(118)])


if __name__ == "__main__":
    magpie()
    cgcnn()
    megnet16()
    matscholar()
    mat2vec()
    oliynyk()
    xenonpy()
