"""Oxidation-state guessing for compositions, with pymatgen's ``Composition.oxi_state_guesses``
semantics (same states, same ICSD-occurrence scores, same order of the guesses, same ties), and
for crystal structures by the bond-valence method of pymatgen's ``BVAnalyzer``
(:func:`bond_valence_states`).

>>> from matxfer import oxidation
>>> oxidation.guess(["Fe2O3", "Fe3O4"])[0]
{'Fe': 3.0, 'O': -2.0}

The search runs in the Rust core, rayon-parallel over the formulas with the GIL released; the
pymatgen tables it needs (``icsd_oxidation_states``, ``common_oxidation_states``,
``oxidation_states`` and the occurrence probabilities of ``analysis/icsd_bv.yaml``, pymatgen
2026.10.24) are embedded, so pymatgen is not needed; so are the bond-valence parameters and ICSD
bond-valence statistics of :func:`bond_valence_states`. See ``docs/oxidation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.featurize import Rejected, formula_items
from matxfer.structures import StructuresLike, as_batch

__all__ = [
    "OxidationGuesses",
    "guess",
    "DEFAULT_MAX_WORK",
    "DEFAULT_MAX_GUESSES",
    "BondValenceStates",
    "bond_valence_states",
]

#: Search steps allowed per formula before it is refused (see :func:`guess`).
DEFAULT_MAX_WORK = 10_000_000
#: Guesses allowed per formula with ``all_guesses=True``.
DEFAULT_MAX_GUESSES = 1_000_000

Guess = dict[str, float]


@dataclass
class OxidationGuesses:
    """Result of :func:`guess`: one entry per input row, in input order.

    ``guesses[i]`` is the best guess ``{element: average oxidation state}`` of row ``i`` (``None``
    when no combination is charge balanced, or the row was rejected), or with ``all_guesses=True``
    the list of every guess, best first (empty when none balances; ``None`` when rejected).
    ``scores`` holds the matching pymatgen scores (sums of ICSD occurrence probabilities).
    Rejected rows (``errors="none"``) are listed in ``rejected``.
    """

    guesses: list[Any]
    scores: list[Any]
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.guesses)

    def __getitem__(self, index: int) -> Any:
        return self.guesses[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.guesses)


def guess(
    formulas: Any,
    *,
    all_guesses: bool = False,
    target_charge: float = 0,
    all_oxi_states: bool = False,
    max_work: int = DEFAULT_MAX_WORK,
    max_guesses: int = DEFAULT_MAX_GUESSES,
    errors: str = "raise",
    n_threads: Optional[int] = None,
) -> OxidationGuesses:
    """Guess oxidation states of many formulas as ``pymatgen.Composition(f).oxi_state_guesses()``.

    Parameters
    ----------
    formulas
        A str, or an iterable of str / pymatgen ``Composition`` / ``{element: amount}`` dicts
        (pandas, polars and pyarrow columns too). Amounts must be integers, as in pymatgen.
    all_guesses
        ``False`` (default): the best guess per row (pymatgen's ``oxi_state_guesses()[0]``), or
        ``None`` when there is none. ``True``: every guess, best first, exactly pymatgen's tuple
        order (ties in pymatgen's enumeration order).
    target_charge
        Total charge the oxidation states must sum to (pymatgen ``target_charge``, default 0).
    all_oxi_states
        Search every known state of each element (pymatgen ``all_oxi_states``), not only the
        ICSD ones (or the common ones for elements without ICSD states).
    max_work
        Search steps allowed per formula. pymatgen enumerates every multiset of states per
        element (11 million tuples for the 64 carbon atoms of ``C64H164O12Si8Sn8``); matxfer
        reaches the same answer with a knapsack over the state counts, about
        ``(2 k + 1) (n + 1) (n (max - min) + 1)`` steps for ``n`` atoms with ``k`` states between
        ``min`` and ``max``. A formula over the bound (``C3000H2000O5``) is refused with a :class:`~matxfer.FeaturizationError` naming its row (reason
        ``too_many_combinations``) instead of running for hours.
    max_guesses
        Guesses allowed per formula with ``all_guesses=True`` (reason ``too_many_guesses``).
    errors
        ``"raise"`` (default): the first bad row (unparseable, non-integer amounts, over a bound)
        raises, naming the row. ``"none"``: bad rows give ``None`` and are listed in ``rejected``.
    n_threads
        Worker threads (default: ``MATXFER_NUM_THREADS`` or all cores); results do not depend
        on it.
    """
    if errors not in ("raise", "none"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'none', got {errors!r}")
    for name, value in (("max_work", max_work), ("max_guesses", max_guesses)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    items = formula_items(formulas)
    rows, rejected = _core.guess_oxidation_states(
        items,
        all_guesses=bool(all_guesses),
        target_charge=float(target_charge),
        all_oxi_states=bool(all_oxi_states),
        max_work=max_work,
        max_guesses=max_guesses,
        errors=errors,
        n_threads=n_threads,
    )
    guesses: list[Union[None, Guess, list[Guess]]] = []
    scores: list[Union[None, float, list[float]]] = []
    for row in rows:
        if row is None:
            guesses.append(None)
            scores.append(None)
        elif all_guesses:
            guesses.append([g for g, _ in row])
            scores.append([s for _, s in row])
        elif row:
            guesses.append(row[0][0])
            scores.append(row[0][1])
        else:
            guesses.append(None)
            scores.append(None)
    return OxidationGuesses(guesses, scores, [Rejected(*r) for r in rejected])


@dataclass
class BondValenceStates:
    """Result of :func:`bond_valence_states`, aligned with the batch's sites.

    ``values`` (int32, one entry per site of the batch, in its order; ``values[ptr[s]:ptr[s + 1]]``
    are the states of structure ``s``); ``valid`` (bool, one per structure) is ``False`` for a
    structure that has no states (``errors="nan"``): its sites hold 0 in ``values``, NaN in
    :meth:`as_float`, ``result[s]`` is ``None`` and ``rejected`` lists it as ``(index, id,
    reason)``.
    """

    values: np.ndarray
    ptr: np.ndarray
    valid: np.ndarray
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.valid)

    def __getitem__(self, index: int) -> Optional[np.ndarray]:
        """The states of structure ``index`` (a view of ``values``), or ``None`` if rejected."""
        if not self.valid[index]:
            return None
        return self.values[self.ptr[index] : self.ptr[index + 1]]

    def __iter__(self) -> Iterator[Optional[np.ndarray]]:
        return (self[k] for k in range(len(self)))

    def as_float(self) -> np.ndarray:
        """``values`` as float64 with NaN on the sites of rejected structures."""
        out = self.values.astype(np.float64)
        out[~np.repeat(self.valid, np.diff(self.ptr))] = np.nan
        return out


def _positive_real(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        need = "finite and >= 0" if allow_zero else "finite and > 0"
        raise InvalidArgumentError(f"{name} must be {need}, got {value!r}")
    return x


def bond_valence_states(
    structures: StructuresLike,
    *,
    symprec: float = 0.1,
    max_radius: float = 4.0,
    distance_scale_factor: float = 1.015,
    max_permutations: int = 100_000,
    errors: str = "raise",
    n_threads: Optional[int] = None,
) -> BondValenceStates:
    """Integer oxidation state of every site by the bond-valence method, as pymatgen's
    ``BVAnalyzer(symm_tol=symprec, max_radius=..., max_permutations=...,
    distance_scale_factor=...).get_valences(structure)`` answers it (ordered structures).

    Per symmetry orbit, the bond-valence sum of a representative site (O'Keeffe & Brese 1991
    parameters, neighbors within ``max_radius`` angstrom, distances times
    ``distance_scale_factor``) gives each oxidation state a posterior (a Gaussian around the
    ICSD mean of that state's sums times its ICSD occurrence); a depth-first search with charge
    bounds picks the most probable charge-neutral assignment in which one element's states differ
    by at most 1. See ``docs/oxidation.md``.

    Parameters
    ----------
    structures
        Anything :func:`matxfer.structures.as_batch` reads (a ``StructureBatch``, a file path,
        pymatgen / ASE structures, dicts).
    symprec
        Symmetry tolerance in angstrom for the orbits (pymatgen ``symm_tol``); 0 treats every
        site on its own, which needs no symmetry search. The orbits come from moyo rather than
        spglib: on a few near-symmetric cells the two group sites differently at the same
        tolerance, and the answers can differ (docs/oxidation.md lists the measured cases).
    max_radius
        Neighbor cutoff, angstrom (finite, > 0).
    distance_scale_factor
        Factor applied to every distance (1.015 suits GGA-relaxed cells; 1 for experiment).
    max_permutations
        The search stops after this many permutations (pruned branches and complete
        assignments, counted as pymatgen counts them); the best assignment found so far wins.
    errors
        ``"raise"``: a structure without an answer (an element without bond-valence parameters,
        no charge-neutral assignment, no probable state, an invalid cell) raises
        :class:`~matxfer.exceptions.StructureError` naming its index, id and the reason; these
        are the structures on which pymatgen raises ``ValueError``. ``"nan"``: it is marked
        invalid (``valid[s]`` False, NaN in :meth:`BondValenceStates.as_float`) and listed in
        ``rejected``.
    n_threads
        Worker threads (default ``MATXFER_NUM_THREADS`` or all cores); the states do not depend
        on it.
    """
    if errors not in ("raise", "nan"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'nan', got {errors!r}")
    symprec = _positive_real("symprec", symprec, allow_zero=True)
    if symprec >= 1:
        raise InvalidArgumentError(f"symprec must be 0 or in (0, 1) angstrom, got {symprec!r}")
    max_radius = _positive_real("max_radius", max_radius)
    distance_scale_factor = _positive_real("distance_scale_factor", distance_scale_factor)
    integer = isinstance(max_permutations, (int, np.integer)) and not isinstance(max_permutations, bool)
    if not integer or max_permutations < 0:
        raise InvalidArgumentError(f"max_permutations must be an int >= 0, got {max_permutations!r}")
    batch = as_batch(structures)
    values, failed = _core.bond_valence_states(
        batch._native(),
        symprec=symprec,
        max_radius=max_radius,
        distance_scale_factor=distance_scale_factor,
        max_permutations=int(max_permutations),
        raise_errors=errors == "raise",
        n_threads=n_threads,
    )
    valid = np.ones(len(batch), dtype=bool)
    rejected = []
    for k, reason in failed:
        valid[k] = False
        rejected.append(Rejected(int(k), "" if batch.ids[k] is None else str(batch.ids[k]), reason))
    return BondValenceStates(values, np.asarray(batch.ptr, dtype=np.int64), valid, rejected)
