"""Ionic structure descriptors computed as pymatgen and matminer do, in the Rust core (batched,
rayon-parallel, GIL released, the same bits for any thread count):

* :func:`ewald_energy`: the Coulomb energy of point charges by Ewald summation, as pymatgen's
  ``EwaldSummation`` (matminer ``EwaldEnergy``), with oxidation states given per site or guessed
  as ``Structure.add_oxidation_state_by_guess()`` assigns them;
* :func:`orbital_field_matrix`: the orbital field matrix of Pham et al. (matminer
  ``OrbitalFieldMatrix``, or XenonPy's variant with ``flavour="xenonpy"``) on the core's exact
  periodic Voronoi cells.

See ``docs/ionic.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.structures import StructuresLike, as_batch

__all__ = ["EwaldEnergies", "ewald_energy", "orbital_field_matrix"]


@dataclass
class EwaldEnergies:
    """Result of :func:`ewald_energy`: per structure (S,) arrays in eV, and the per-site
    oxidation states used (``charges``, (N,), in the batch's site order)."""

    total: np.ndarray
    real: np.ndarray
    reciprocal: np.ndarray
    point: np.ndarray
    charged: np.ndarray
    charges: np.ndarray
    n_sites: np.ndarray

    @property
    def per_atom(self) -> np.ndarray:
        """``total / n_sites``: matminer ``EwaldEnergy()``'s ``ewald_energy_per_atom``."""
        return self.total / self.n_sites


def _site_states(oxidation_states: Any, ptr: np.ndarray) -> np.ndarray:
    n_sites = int(ptr[-1])
    if isinstance(oxidation_states, np.ndarray) and oxidation_states.ndim == 1:
        flat = oxidation_states
    else:
        items = list(oxidation_states)
        if len(items) == len(ptr) - 1 and all(np.ndim(x) == 1 for x in items):
            for s, x in enumerate(items):
                if len(x) != ptr[s + 1] - ptr[s]:
                    raise InvalidArgumentError(
                        f"oxidation_states: structure {s} has {ptr[s + 1] - ptr[s]} sites but {len(x)} states"
                    )
            flat = np.concatenate([np.asarray(x, dtype=np.float64) for x in items]) if items else np.zeros(0)
        else:
            flat = np.asarray(items)
    try:
        flat = np.ascontiguousarray(flat, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"oxidation_states cannot be read as numbers: {exc}") from None
    if len(flat) != n_sites:
        raise InvalidArgumentError(f"oxidation_states: {len(flat)} states for {n_sites} sites")
    return flat


def ewald_energy(
    structures: StructuresLike,
    oxidation_states: Union[str, Sequence[Any], np.ndarray] = "guess",
    *,
    accuracy: float = 4,
    eta: Optional[float] = None,
    real_space_cut: Optional[float] = None,
    recip_space_cut: Optional[float] = None,
    no_guess: str = "zero",
    max_work: int = 10_000_000,
    n_threads: Optional[int] = None,
) -> EwaldEnergies:
    """Ewald energy of every structure, as ``pymatgen.analysis.ewald.EwaldSummation(structure,
    acc_factor=accuracy).total_energy`` (eV); ``.per_atom`` is matminer ``EwaldEnergy()``.

    Parameters
    ----------
    oxidation_states
        ``"guess"`` (default): each structure is decorated as pymatgen's
        ``Structure.add_oxidation_state_by_guess()`` does: the first (best) guess of
        ``structure.composition.oxi_state_guesses()`` over the cell's site counts (the
        :func:`matxfer.oxidation.guess` search), each element's average state on all its
        sites; when no combination balances, every state is 0 (pymatgen's fallback, so the
        energy is 0) or, with ``no_guess="raise"``, a ``StructureError`` naming the structure.
        Otherwise explicit states: one flat array with a state per site of the batch, or one
        sequence per structure (e.g. ``[[sp.oxi_state for sp in s.species] for s in
        decorated]``); fractional states (mixed valence) are allowed.
    accuracy
        pymatgen ``acc_factor``, decimal places of accuracy; 4 is matminer's ``EwaldEnergy``
        default (pymatgen's own default is 12).
    eta, real_space_cut, recip_space_cut
        pymatgen's overrides of the screening parameter (1/A^2) and cutoffs (A, 1/A); by
        default ``eta = pi (N / sqrt(2) / V^2)^(1/3)``, ``r_max = sqrt(ln 10^accuracy / eta)``,
        ``g_max = 2 sqrt(eta ln 10^accuracy)``.
    max_work
        Search steps allowed per structure for the oxidation-state guess (see
        :func:`matxfer.oxidation.guess`).

    Structures must be periodic along a, b and c. Cutoffs and the work of each structure are
    checked before anything is allocated; a structure over the limits, a non-periodic one or a
    failed guess raises ``StructureError`` naming it.
    """
    if no_guess not in ("zero", "raise"):
        raise InvalidArgumentError(f"no_guess must be 'zero' or 'raise', got {no_guess!r}")
    if isinstance(max_work, bool) or not isinstance(max_work, int) or max_work < 1:
        raise InvalidArgumentError(f"max_work must be a positive int, got {max_work!r}")
    batch = as_batch(structures)
    if isinstance(oxidation_states, str):
        if oxidation_states != "guess":
            raise InvalidArgumentError(f"oxidation_states must be 'guess' or per-site states, got {oxidation_states!r}")
        states = None
    else:
        states = _site_states(oxidation_states, batch.ptr)
    d = _core.ewald_energy(
        batch._native(),
        states,
        accuracy=accuracy,
        eta=eta,
        real_space_cut=real_space_cut,
        recip_space_cut=recip_space_cut,
        max_work=max_work,
        no_guess=no_guess,
        n_threads=n_threads,
    )
    return EwaldEnergies(d["total"], d["real"], d["reciprocal"], d["point"], d["charged"], d["charges"], np.diff(batch.ptr))


def orbital_field_matrix(
    structures: StructuresLike,
    *,
    period_tag: bool = False,
    site_average: Optional[str] = None,
    symprec: float = 0.01,
    flavour: str = "matminer",
    n_threads: Optional[int] = None,
) -> tuple[np.ndarray, list[str]]:
    """Orbital field matrix of every structure, flattened: ``(S, 1024)`` (``(S, 1521)`` with
    ``period_tag``) and the feature names, as matminer's ``OrbitalFieldMatrix(period_tag,
    flatten=True)`` (default) or XenonPy's ``OrbitalFieldMatrix(including_d=True)``
    (``flavour="xenonpy"``).

    Site ``i``'s matrix is ``sum_f o_j^T o_i * (Omega_f / max Omega) / r_f`` over the faces of its
    Voronoi cell (neighbor ``j`` at ``r_f`` bohr, solid angle ``Omega_f``; ``o`` the 32-slot
    one-hot valence vector of Pham et al. as matminer builds it from pymatgen's electronic
    structures), and the structure's is the mean over sites. ``site_average="symmetry"``
    (matminer's way, the default for that flavour): one site per symmetry orbit (moyo at
    ``symprec`` angstrom, pymatgen's ``SymmetrizedStructure`` default 0.01) weighted by the orbit
    size; ``"all"``: every site, which needs no symmetry search and differs only where sites that
    are equivalent within ``symprec`` have slightly different environments. Elements beyond Pu
    (Z > 94) have no valence vector in matminer and raise ``StructureError`` naming the structure.

    ``flavour="xenonpy"``: XenonPy's definition, i.e. its element vectors (the subshells written
    after the noble-gas core of pymatgen's ``Element.electronic_structure``: Sc ``d^1 s^2``, no
    ``p^6``), ``r_f`` in angstrom, always the mean over every site (``site_average`` may only be
    ``"all"``; ``period_tag`` is refused) and XenonPy's names ``"s1_s1"``, ... . These are the
    vectors XenonPy means to build: with current pymatgen XenonPy's own parser finds no subshell
    (docs/ionic.md) and returns zeros but for H/He sites with H/He neighbors. Elements without a pymatgen
    electronic structure (Z > 104) raise ``StructureError`` naming the structure.
    """
    if flavour not in ("matminer", "xenonpy"):
        raise InvalidArgumentError(f"flavour must be 'matminer' or 'xenonpy', got {flavour!r}")
    if site_average is None:
        site_average = "symmetry" if flavour == "matminer" else "all"
    if site_average not in ("symmetry", "all"):
        raise InvalidArgumentError(f"site_average must be 'symmetry' or 'all', got {site_average!r}")
    if flavour == "xenonpy":
        if site_average != "all":
            raise InvalidArgumentError(
                "site_average='symmetry' is matminer's: XenonPy's orbital field matrix averages every site"
            )
        if period_tag:
            raise InvalidArgumentError(
                "period_tag is matminer's option: XenonPy's orbital field matrix has no period tag"
            )
    batch = as_batch(structures)
    values, names = _core.orbital_field_matrix(
        batch._native(),
        period_tag=bool(period_tag),
        site_average=site_average,
        symprec=float(symprec),
        flavour=flavour,
        n_threads=n_threads,
    )
    return values, list(names)
