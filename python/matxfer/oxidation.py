"""Oxidation-state guessing for compositions, with pymatgen's ``Composition.oxi_state_guesses``
semantics (same states, same ICSD-occurrence scores, same order of the guesses, same ties).

>>> from matxfer import oxidation
>>> oxidation.guess(["Fe2O3", "Fe3O4"])[0]
{'Fe': 3.0, 'O': -2.0}

The search runs in the Rust core, rayon-parallel over the formulas with the GIL released; the
pymatgen tables it needs (``icsd_oxidation_states``, ``common_oxidation_states``,
``oxidation_states`` and the occurrence probabilities of ``analysis/icsd_bv.yaml``, pymatgen
2026.10.24) are embedded, so pymatgen is not needed. See ``docs/oxidation.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.featurize import Rejected, formula_items

__all__ = ["OxidationGuesses", "guess", "DEFAULT_MAX_WORK", "DEFAULT_MAX_GUESSES"]

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
