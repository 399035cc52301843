"""Regenerate ``rust/matxfer-core/data/elements/ofm_valence.csv``: per element (Z = 1..94) the
valence-shell one-hot vector of the orbital field matrix (Pham et al., Sci. Technol. Adv. Mater.
18, 756 (2017)) and the period used by its optional period tag.

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
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "rust" / "matxfer-core" / "data" / "elements" / "ofm_valence.csv"
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


if __name__ == "__main__":
    main()
