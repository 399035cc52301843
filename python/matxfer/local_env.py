"""Local environments of crystal sites: pymatgen's CrystalNN and matminer's BondFractions.

:func:`crystal_nn` computes, for every site of a batch, what
``pymatgen.analysis.local_env.CrystalNN().get_nn_data`` gives for structures without oxidation
states: the coordination-number probabilities (``cn_weights``), the neighbors (index, image,
weight) of each coordination number and the most probable one (``get_cn``, ``get_nn_info``).
:class:`BondFractions` is matminer's featurizer of that name on top of it (or of
:func:`matxfer.structures.voronoi_cells` for ``nn="VoronoiNN"``). See docs/structures.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.structures import StructureBatch, StructuresLike, as_batch, voronoi_cells


@dataclass
class CrystalNNResult:
    """CrystalNN of every site of a batch (sites in order, structures in order; site indices
    below are positions in the whole batch, ``batch.ptr[s] + i``).

    * ``cn`` (N,) int64: the most probable coordination number of each site (``get_cn``);
    * neighbors ``nbr_ptr[t]:nbr_ptr[t + 1]`` of site ``t``, sorted by decreasing weight: ``j``
      (local index of the neighbor in its structure), ``shifts`` (M, 3) int32 its image ``S``
      (``r_ij = r_j - r_i + S @ lattice``), ``weights`` (CrystalNN's, rounded to 3 decimals, in
      (0, 1]) and ``distances`` (angstrom). The neighbors of coordination number ``n`` are the
      first ``n``; ``get_nn_info`` is the first ``cn[t]``;
    * CN probabilities ``cnw_ptr[t]:cnw_ptr[t + 1]``: ``cn_values`` and ``cn_probs``, in
      pymatgen's order (``cn_weights`` as a dict is :meth:`cn_weights`);
    * ``site_ptr`` (S + 1,): structure ``s`` owns sites ``site_ptr[s]:site_ptr[s + 1]``.
    """

    cn: np.ndarray
    nbr_ptr: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    weights: np.ndarray
    distances: np.ndarray
    cnw_ptr: np.ndarray
    cn_values: np.ndarray
    cn_probs: np.ndarray
    site_ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.cn)

    def cn_weights(self, site: int) -> dict:
        """``{cn: probability}`` of one site, as pymatgen's ``get_nn_data(...).cn_weights``."""
        a, b = int(self.cnw_ptr[site]), int(self.cnw_ptr[site + 1])
        return {int(c): float(p) for c, p in zip(self.cn_values[a:b], self.cn_probs[a:b])}

    def neighbors(self, site: int, cn: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(j, shifts, weights)`` of the neighbors of one site for coordination number ``cn``
        (default: the chosen one, as ``get_nn_info``)."""
        n = int(self.cn[site]) if cn is None else int(cn)
        if n not in self.cn_weights(site):
            raise InvalidArgumentError(
                f"site {site} has no coordination number {n} (it has {sorted(self.cn_weights(site))})"
            )
        a = int(self.nbr_ptr[site])
        return self.j[a : a + n], self.shifts[a : a + n], self.weights[a : a + n]

    def chosen(self) -> np.ndarray:
        """``(M,)`` bool: which neighbor rows belong to the chosen coordination number."""
        rank = np.arange(len(self.j)) - np.repeat(self.nbr_ptr[:-1], np.diff(self.nbr_ptr))
        return rank < np.repeat(self.cn, np.diff(self.nbr_ptr))

    def site_of(self) -> np.ndarray:
        """``(M,)`` int64: the batch-wide site index of the center of every neighbor row."""
        return np.repeat(np.arange(len(self.cn), dtype=np.int64), np.diff(self.nbr_ptr))


def crystal_nn(
    structures: StructuresLike,
    *,
    distance_cutoffs: Optional[Tuple[float, float]] = (0.5, 1.0),
    x_diff_weight: float = 3.0,
    porous_adjustment: bool = True,
    search_cutoff: float = 7.0,
    n_threads: Optional[int] = None,
) -> CrystalNNResult:
    """pymatgen's ``CrystalNN`` (``weighted_cn=False``, ``cation_anion=False``; the other options
    under pymatgen's names and defaults) on every site of every structure, for structures
    without oxidation states: each site's radius is pymatgen's default (covalent radius, else
    atomic radius; elements from Bk on have neither and are refused while ``distance_cutoffs``
    is set).

    The Voronoi cells are those pymatgen's ``VoronoiNN(cutoff=search_cutoff)`` sees: clipped by
    the neighbors within ``search_cutoff``, the cutoff doubled for a site whose cell stays open.
    Structures must be periodic along a, b and c; a bad structure raises ``StructureError``
    naming it. Runs in parallel with the GIL released; the result is the same for every
    ``n_threads``.
    """
    batch = as_batch(structures)
    if distance_cutoffs is not None:
        try:
            lo, hi = distance_cutoffs
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"distance_cutoffs must be None or (low, high), got {distance_cutoffs!r}"
            ) from None
        cutoffs: Optional[Tuple[float, float]] = (lo, hi)
    else:
        cutoffs = None
    if not isinstance(porous_adjustment, (bool, np.bool_)):
        raise InvalidArgumentError(f"porous_adjustment must be a bool, got {porous_adjustment!r}")
    d = _core.crystal_nn(
        batch._native(), cutoffs, x_diff_weight, bool(porous_adjustment), search_cutoff, n_threads
    )
    return CrystalNNResult(
        d["cn"],
        d["nbr_ptr"],
        d["j"],
        d["shifts"],
        d["weights"],
        d["distances"],
        d["cnw_ptr"],
        d["cn_values"],
        d["cn_probs"],
        d["site_ptr"],
    )


def crystal_nn_fingerprint(
    structures: StructuresLike, *, n_threads: Optional[int] = None
) -> Tuple[np.ndarray, list]:
    """matminer's ``CrystalNNFingerprint.from_preset("ops")`` for every site: ``(N, 61)`` float64
    and matminer's 61 feature names. For each coordination number ``n = 1..24``: ``"wt CN_n"``,
    the CrystalNN probability of ``n`` (:func:`crystal_nn`, pymatgen defaults), then for each
    order parameter matminer lists at ``n`` (:data:`matxfer.order_params.CRYSTALNN_OPS`) that
    probability times the parameter of the site and its first ``n`` CrystalNN neighbors (0 where
    the probability is 0 or pymatgen's parameter is ``None``)."""
    batch = as_batch(structures)
    values, labels = _core.crystal_nn_fingerprint(batch._native(), n_threads)
    return values, list(labels)


#: The statistics of ``SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")``.
SITE_STATS = ("mean", "std_dev")


def site_stats_crystal_nn_ops(
    structures: StructuresLike, *, n_threads: Optional[int] = None
) -> Tuple[np.ndarray, list]:
    """matminer's ``SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")``: ``(S, 122)``,
    the mean and the (population) standard deviation over the sites of each structure of every
    :func:`crystal_nn_fingerprint` feature, named ``"mean wt CN_1"``, ``"std_dev wt CN_1"``, ...
    in matminer's order (0 standard deviation for one site)."""
    batch = as_batch(structures)
    values, labels = crystal_nn_fingerprint(batch, n_threads=n_threads)
    counts = np.diff(batch.ptr)
    if len(batch) and not np.all(counts > 0):
        bad = int(np.flatnonzero(counts == 0)[0])
        raise InvalidArgumentError(f"structure {bad} has no sites")
    starts = batch.ptr[:-1]
    mean = (
        np.add.reduceat(values, starts, axis=0) / counts[:, None]
        if len(batch)
        else np.zeros((0, values.shape[1]))
    )
    dev = values - np.repeat(mean, counts, axis=0)
    var = (
        np.add.reduceat(dev * dev, starts, axis=0) / counts[:, None]
        if len(batch)
        else np.zeros((0, values.shape[1]))
    )
    std = np.sqrt(var)
    std[counts == 1] = 0.0
    out = np.empty((len(batch), 2 * values.shape[1]))
    out[:, 0::2] = mean
    out[:, 1::2] = std
    names = [f"{stat} {label}" for label in labels for stat in SITE_STATS]
    return out, names


def _symbols() -> list:
    return list(_core.element_table("onehot")[1])


def _bond(a: str, b: str, token: str) -> str:
    x, y = sorted((a, b))
    return x + token + y


class BondFractions:
    """matminer's ``BondFractions``: the fraction of each bond type (element pair, ``"A - B"``
    with the two symbols in alphabetical order) among all bonds of a structure, a bond being a
    (site, neighbor) pair of the near-neighbor method ``nn``:

    * ``"CrystalNN"`` (matminer's default): the chosen neighbors of :func:`crystal_nn`;
    * ``"VoronoiNN"``: every Voronoi face of :func:`matxfer.structures.voronoi_cells` (pymatgen's
      qhull also counts neighbors that touch a cell at an edge or a vertex, with a face of
      rounding size; matxfer does not, see docs/structures.md).

    ``fit`` learns the bond types as matminer does: every pair of elements present together in a
    structure (bonded or not), sorted; ``allowed_bonds`` restricts them. A fitted bond that cannot
    occur in a structure (one of its elements absent) gets ``bbv`` (``None``: NaN); bonds of a
    structure outside the fitted set count in its total only. Structures without oxidation
    states (matminer's ``no_oxi`` makes no difference then); ``approx_bonds`` is not offered.
    """

    def __init__(
        self,
        nn: str = "CrystalNN",
        bbv: Optional[float] = 0.0,
        token: str = " - ",
        allowed_bonds: Optional[Sequence[str]] = None,
        n_threads: Optional[int] = None,
    ):
        if nn not in ("CrystalNN", "VoronoiNN"):
            raise InvalidArgumentError(f'nn must be "CrystalNN" or "VoronoiNN", got {nn!r}')
        if (
            " " not in token
            or any(c.isalnum() for c in token)
            or (token != " " and len(token.split(" ")) != 3)
        ):
            raise InvalidArgumentError(
                f"token must be a space, or single-space padded with no letters or digits, got {token!r}"
            )
        self.nn = nn
        self.bbv = bbv
        self.token = token
        self.n_threads = n_threads
        self.allowed_bonds = None if allowed_bonds is None else self._sanitize(allowed_bonds)
        self.fitted_bonds_: Optional[list] = None if allowed_bonds is None else list(self.allowed_bonds or [])

    def _sanitize(self, bonds: Iterable[str]) -> list:
        out = []
        for b in bonds:
            if not isinstance(b, str) or self.token not in b:
                raise InvalidArgumentError(
                    f"bond {b!r} must be a string with the token {self.token!r} between the species"
                )
            parts = sorted(b.replace(" bond frac.", "").split(self.token))
            out.append(self.token.join(parts))
        return out

    def _pairs(self, batch: StructureBatch) -> list:
        """Per structure: the sorted bond types of its elements (matminer's ``enumerate_bonds``)."""
        symbols = _symbols()
        out = []
        for s in range(len(batch)):
            zs = np.unique(batch.numbers[batch.ptr[s] : batch.ptr[s + 1]])
            els = [symbols[z - 1] for z in zs]
            bonds = {_bond(a, b, self.token) for k, a in enumerate(els) for b in els[k:]}
            out.append(sorted(bonds))
        return out

    def fit(self, structures: StructuresLike) -> BondFractions:
        batch = as_batch(structures)
        found = sorted({b for bonds in self._pairs(batch) for b in bonds})
        if self.allowed_bonds is None:
            self.fitted_bonds_ = found
        else:
            self.fitted_bonds_ = [b for b in found if b in self.allowed_bonds]
        return self

    def feature_labels(self) -> list:
        if self.fitted_bonds_ is None:
            raise InvalidArgumentError("BondFractions must be fitted (fit) or given allowed_bonds first")
        return [b + " bond frac." for b in self.fitted_bonds_]

    def featurize(self, structures: StructuresLike) -> np.ndarray:
        """``(S, B)`` bond fractions in the order of :meth:`feature_labels`."""
        self.feature_labels()  # raises when not fitted
        fitted = self.fitted_bonds_ or []
        batch = as_batch(structures)
        site_ptr = batch.ptr
        if self.nn == "CrystalNN":
            r = crystal_nn(batch, n_threads=self.n_threads)
            keep = r.chosen()
            center = r.site_of()[keep]
            owner = np.repeat(np.arange(len(batch)), np.diff(site_ptr))[center]
            neighbor = site_ptr[owner] + r.j[keep]
        else:
            cells = voronoi_cells(batch, n_threads=self.n_threads)
            owner = np.repeat(np.arange(len(batch)), np.diff(cells.face_ptr))
            center = site_ptr[owner] + cells.i
            neighbor = site_ptr[owner] + cells.j
        # Bond type per pair: (min Z-symbol, max) by symbol order, as one code per element pair.
        symbols = _symbols()
        order = np.argsort(np.array(symbols, dtype=object)).astype(np.int64)
        rank = np.empty(len(symbols), dtype=np.int64)
        rank[order] = np.arange(len(symbols))
        za = rank[batch.numbers[center] - 1]
        zb = rank[batch.numbers[neighbor] - 1]
        lo, hi = np.minimum(za, zb), np.maximum(za, zb)
        n_el = len(symbols)
        code = lo * n_el + hi
        total = np.bincount(owner, minlength=len(batch)).astype(np.float64)
        total[total == 0] = 1.0
        out = np.zeros((len(batch), len(fitted)))
        if not fitted:
            return out
        bond_code = {}
        for k, b in enumerate(fitted):
            x, y = b.split(self.token)
            if x in symbols and y in symbols:
                bond_code[rank[symbols.index(x)] * n_el + rank[symbols.index(y)]] = k
        column = np.full(n_el * n_el, -1, dtype=np.int64)
        for c, k in bond_code.items():
            column[c] = k
        col = column[code]
        hit = col >= 0
        counts = np.zeros((len(batch), len(fitted)))
        np.add.at(counts, (owner[hit], col[hit]), 1.0)
        out = counts / total[:, None]
        # Fitted bonds a structure cannot have (an element absent) take the bad-bond value.
        possible = self._pairs(batch)
        bad = np.nan if self.bbv is None else float(self.bbv)
        index = {b: k for k, b in enumerate(fitted)}
        for s, bonds in enumerate(possible):
            mask = np.ones(len(fitted), dtype=bool)
            mask[[index[b] for b in bonds if b in index]] = False
            out[s, mask] = bad
        return out


__all__ = [
    "BondFractions",
    "CrystalNNResult",
    "SITE_STATS",
    "crystal_nn",
    "crystal_nn_fingerprint",
    "site_stats_crystal_nn_ops",
]
