"""SOAP power spectra (Bartok et al. 2013) as dscribe's ``SOAP`` computes them with its default
GTO radial basis, in the Rust core (batched, rayon-parallel, GIL released, the same bits for
any thread count). See ``docs/soap.md``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import ArgumentTypeError, InvalidArgumentError
from matxfer.structures import StructuresLike, as_batch

__all__ = ["soap"]


def _atomic_number(item: Union[str, int]) -> int:
    if isinstance(item, (bool, np.bool_)):
        raise ArgumentTypeError(f"species entries must be element symbols or atomic numbers, got {item!r}")
    if isinstance(item, (int, np.integer)):
        return int(item)
    if isinstance(item, str):
        try:
            return int(_core.atomic_numbers([item])[0])
        except InvalidArgumentError:
            raise InvalidArgumentError(f"species: unknown element {item!r}") from None
    raise ArgumentTypeError(
        f"species entries must be element symbols or atomic numbers, got {type(item).__name__}"
    )


def soap(
    structures: StructuresLike,
    species: Sequence[Union[str, int]],
    r_cut: float,
    n_max: int,
    l_max: int,
    sigma: float = 1.0,
    average: str = "off",
    *,
    periodic: bool = True,
    n_threads: Optional[int] = None,
) -> Tuple[np.ndarray, List[str]]:
    """SOAP power spectra, numerically those of
    ``dscribe.descriptors.SOAP(species, r_cut, n_max, l_max, sigma, rbf="gto", average=average,
    periodic=periodic)`` (no weighting, no compression).

    ``species``: every element that occurs (symbols or atomic numbers, any order; the output uses
    increasing atomic number). ``r_cut`` (> 1) and ``sigma`` (> 0) in angstrom; ``n_max`` in
    1..64, ``l_max`` in 0..20. Atoms within ``r_cut + sigma * sqrt(-2 ln 1e-3)`` of a center
    contribute a Gaussian of width ``sigma``. ``periodic=True`` follows each structure's ``pbc``
    (periodic images included); ``False`` treats every structure as an isolated cluster.
    ``average``: ``"off"`` one row per site (sites in order, structures in order), ``"inner"``
    the power spectrum of the site-averaged coefficients, ``"outer"`` the site average of the
    power spectra (one row per structure).

    Returns ``(array, feature_names)``: a float64 ``(rows, n_features)`` array with
    ``n_features = (S n_max)(S n_max + 1) / 2 (l_max + 1)`` for ``S`` species, in dscribe's order
    (species pairs, then ``l``, then ``n``, ``n'``), and names such as ``"SOAP O-Ti l=2 n=0 n'=1"``.
    A site whose element is not in ``species`` raises ``StructureError`` naming the structure.
    """
    batch = as_batch(structures)
    if (
        isinstance(species, (str, bytes))
        or not isinstance(species, Sequence)
        and not isinstance(species, np.ndarray)
    ):
        raise ArgumentTypeError("species must be a sequence of element symbols or atomic numbers")
    numbers = [_atomic_number(s) for s in species]
    if average not in ("off", "inner", "outer"):
        raise InvalidArgumentError(f"average must be 'off', 'inner' or 'outer', got {average!r}")
    values, names = _core.soap(
        batch._native(), numbers, r_cut, n_max, l_max, sigma, average, bool(periodic), n_threads
    )
    return values, names
