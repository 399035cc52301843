"""Regenerate the orbital-field-matrix element tables of ``rust/matxfer-core/data/elements/``:

* ``ofm_valence.csv`` (matminer flavour): per element (Z = 1..94) the valence-shell one-hot vector
  of the orbital field matrix (Pham et al., Sci. Technol. Adv. Mater. 18, 756 (2017)) and the
  period used by its optional period tag;
* ``ofm_xenonpy.csv`` (XenonPy flavour): per element with a pymatgen electronic structure the
  vector XenonPy's ``OrbitalFieldMatrix`` means to build (see :func:`xenonpy_vector`).

The vector has 32 slots, ``s^1 s^2 p^1..p^6 d^1..d^10 f^1..f^14``: slot ``l^k`` is 1 when a
valence subshell of angular momentum ``l`` holds ``k`` electrons. The valence subshells are read
from pymatgen's ``Element.full_electronic_structure`` as matminer reads them: with ``n`` the
principal number of the *last* subshell pymatgen lists (for the transition metals the ``(n-1)d``
subshell, so ``n - 1``, and their filled ``(n-1)p^6`` counts as valence, as in matminer), every
subshell with principal number at least ``n``, the ``d`` and ``f`` subshells of ``n - 1`` and
the ``f`` subshell of ``n - 2``.
The period is pymatgen's ``Element.row`` with the lanthanide and actinide rows (8, 9) mapped to 6
and 7. Run with pymatgen installed; the script checks the result against matminer's
``OrbitalFieldMatrix.get_ohv`` when matminer is importable.

XenonPy (``xenonpy.descriptor.OrbitalFieldMatrix.get_element_representation``) sets slot ``l^k``
for every subshell written after the noble-gas core of pymatgen's abbreviated
``Element.electronic_structure`` (Sc ``[Ar].3d1.4s2``: ``d^1`` and ``s^2``), H and He being
``s^1`` and ``s^2``. XenonPy parses the string with a pattern that expects ``<sup>`` tags
around the counts, which pymatgen's ``electronic_structure`` no longer returns (it strips them),
so XenonPy itself now gets all-zero vectors for every element but H and He; the table here is
the intended one (the same subshells read from the untagged string). The script checks it
against XenonPy's own function with the tags put back when XenonPy is importable.
"""

from __future__ import annotations

from pathlib import Path

ELEMENTS = Path(__file__).resolve().parents[1] / "rust" / "matxfer-core" / "data" / "elements"
OUT = ELEMENTS / "ofm_valence.csv"
OUT_XENONPY = ELEMENTS / "ofm_xenonpy.csv"
ORBITALS = {"s": 0, "p": 1, "d": 2, "f": 3}
OFFSET = {0: 0, 1: 2, 2: 8, 3: 18}


def valence_vector(el) -> list[int]:
    shells = el.full_electronic_structure
    n_max = shells[-1][0]
    vec = [0] * 32
    for n, orbital, count in shells:
        keep = n >= n_max or (n == n_max - 1 and orbital in "df") or (n == n_max - 2 and orbital == "f")
        if keep and count > 0:
            vec[OFFSET[ORBITALS[orbital]] + count - 1] = 1
    return vec


def xenonpy_vector(el) -> list[int]:
    """XenonPy's intended vector: the subshells after the core of ``el.electronic_structure``."""
    import re

    vec = [0] * 32
    if el.symbol in ("H", "He"):
        shells = [("s", int(el.symbol == "He") + 1)]
    else:
        text = el.electronic_structure
        shells = [(o, int(k)) for o, k in re.findall(r"\.\d([spdf])(\d+)", text)]
        if not text.startswith("[") or not shells or len(shells) != text.count("."):
            raise ValueError(f"{el.symbol}: unexpected electronic structure {text!r}")
    for orbital, count in shells:
        vec[OFFSET[ORBITALS[orbital]] + count - 1] = 1
    return vec


def xenonpy_rows() -> list[tuple[int, str, str]]:
    """``(Z, symbol, bits)`` for every element pymatgen has an electronic structure for (Z = 1..N
    without gaps; the first element without one ends the table)."""
    from pymatgen.core import Element

    rows = []
    for z in range(1, 119):
        el = Element.from_Z(z)
        try:
            bits = "".join(map(str, xenonpy_vector(el)))
        except (KeyError, AttributeError):  # no electronic structure in pymatgen
            break
        rows.append((z, el.symbol, bits))
    return rows


def check_xenonpy(rows) -> None:
    """Compare with XenonPy's ``get_element_representation`` fed the tagged strings it expects."""
    import re
    from unittest import mock

    try:
        from xenonpy.descriptor import OrbitalFieldMatrix as XenonPyOFM
    except ImportError:
        print("xenonpy not importable: XenonPy table not cross-checked")
        return
    from pymatgen.core import Element

    # The property is defined on Element's base enum; patch it there to return the tagged form
    # of pymatgen's current string (as old pymatgen returned it).
    owner = next(c for c in type(Element("H")).__mro__ if "electronic_structure" in c.__dict__)
    plain = owner.__dict__["electronic_structure"]
    tagged = property(lambda el: re.sub(r"([spdf])(\d+)", r"\1<sup>\2</sup>", plain.func(el)))
    with mock.patch.object(owner, "electronic_structure", new=tagged):
        for _, symbol, bits in rows:
            ref = XenonPyOFM.get_element_representation(symbol)
            assert [int(x) for x in ref] == [int(b) for b in bits], symbol
    print(f"identical to XenonPy's get_element_representation (tagged strings) for Z = 1..{len(rows)}")


def period(el) -> int:
    row = el.row
    return row - 2 if row > 7 else row


def main() -> None:
    from pymatgen.core import Element

    rows = []
    for z in range(1, 95):
        el = Element.from_Z(z)
        rows.append((z, el.symbol, "".join(map(str, valence_vector(el))), period(el)))
    try:
        from matminer.featurizers.structure import OrbitalFieldMatrix
    except ImportError:
        print("matminer not importable: not cross-checked")
    else:
        ofm = OrbitalFieldMatrix(period_tag=True)
        for z, symbol, bits, row in rows:
            ref = list(ofm.get_ohv(Element.from_Z(z), True))
            assert ref[:32] == [int(b) for b in bits], symbol
            assert ref[32:] == [int(k == row - 1) for k in range(7)], symbol
        print("identical to matminer's OrbitalFieldMatrix.get_ohv for Z = 1..94")
    with open(OUT, "w") as f:
        f.write("Z,symbol,valence_onehot,period\n")
        for z, symbol, bits, row in rows:
            f.write(f"{z},{symbol},{bits},{row}\n")
    print(f"wrote {OUT}")

    import pymatgen.core

    xrows = xenonpy_rows()
    check_xenonpy(xrows)
    with open(OUT_XENONPY, "w") as f:
        f.write(f"# generated by tools/build_ofm_table.py from pymatgen {pymatgen.core.__version__}\n")
        f.write("# Element.electronic_structure: 1 at each subshell after the noble-gas core (H s1, He s2), as\n")
        f.write("# XenonPy 0.6.7 OrbitalFieldMatrix.get_element_representation means to (docs/ionic.md)\n")
        f.write("Z,symbol,onehot\n")
        for z, symbol, bits in xrows:
            f.write(f"{z},{symbol},{bits}\n")
    print(f"wrote {OUT_XENONPY}")


if __name__ == "__main__":
    main()
