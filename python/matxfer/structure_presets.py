"""Structure feature presets: one call featurizes a whole batch of crystal structures.

``featurize_structures(batch, preset="ward2017")`` returns a :class:`~matxfer.featurize.Featurized`
(``values, feature_names``), as the composition :func:`matxfer.featurize` does. Presets:

``ward2017``
    The Ward et al. 2017 structure features (PRB 96, 024104) as matminer 0.10.1 computes them, in
    matminer's order and with its labels (132 columns):

    * ``SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017")`` (5),
    * ``SiteStatsFingerprint.from_preset("LocalPropertyDifference_ward-prb-2017")`` (110: 22 Magpie
      properties x minimum, maximum, range, mean, avg_dev),
    * ``StructuralHeterogeneity()`` (9), ``ChemicalOrdering()`` (3, shells 1-3),
      ``MaximumPackingEfficiency()`` (1),
    * ``GlobalSymmetryFeatures()`` without its string column ``crystal_system`` (4:
      ``spacegroup_num``, ``crystal_system_int``, ``is_centrosymmetric`` as 0/1,
      ``n_symmetry_ops``), found by moyo as in :func:`matxfer.structures.global_symmetry_features`.

    All from one periodic Voronoi tessellation per structure (:func:`matxfer.structures.voronoi_cells`).
    See ``docs/structures.md`` for the definitions and the differences from matminer.

``crystalnn_ops``
    matminer's ``SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")`` (122 columns: the
    mean and population standard deviation over sites of the 61 ``CrystalNNFingerprint`` "ops"
    features), as :func:`matxfer.local_env.site_stats_crystal_nn_ops` computes it (CrystalNN with
    pymatgen's defaults and no oxidation states). ``symprec`` is not used.

``ofm``
    matminer's ``OrbitalFieldMatrix(flatten=True)`` (1,024 columns, Pham et al. 2017), averaged over
    symmetry orbits found at ``symprec`` as :func:`matxfer.ionic.orbital_field_matrix` computes it.

With ``errors="nan"``, a batch whose call fails is split in halves until the failing structures are
isolated, so every other structure keeps its row and each failure is reported once.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError, StructureError
from matxfer.featurize import Featurized, Rejected
from matxfer.structures import StructureBatch, StructuresLike, as_batch

#: The structure presets of :func:`featurize_structures`.
STRUCTURE_PRESETS = ("ward2017", "crystalnn_ops", "ofm")


def structure_feature_names(preset: str = "ward2017") -> list[str]:
    """Feature names of a structure preset, in column order."""
    _check_preset(preset)
    if preset == "ward2017":
        return list(_core.ward2017_feature_names())
    return _compute(preset, 0.01, None)(StructureBatch.from_structures([]))[1]


def _compute(preset: str, symprec: float, n_threads: Optional[int]) -> Callable[[StructureBatch], Tuple[np.ndarray, list]]:
    """The function computing ``(values, names)`` of one of the presets built on other modules."""
    if preset == "crystalnn_ops":
        from matxfer.local_env import site_stats_crystal_nn_ops

        return lambda batch: site_stats_crystal_nn_ops(batch, n_threads=n_threads)
    from matxfer.ionic import orbital_field_matrix

    return lambda batch: orbital_field_matrix(batch, symprec=symprec, n_threads=n_threads)


def _isolating_failures(
    compute: Callable[[StructureBatch], Tuple[np.ndarray, list]], batch: StructureBatch, width: int
) -> Tuple[np.ndarray, List[Rejected]]:
    """Rows of every structure that ``compute`` accepts, NaN rows and a :class:`Rejected` for the
    others: a failing batch is split in halves until each failure stands alone (``O(f log n)``
    calls for ``f`` failures among ``n`` structures)."""
    values = np.full((len(batch), width), np.nan)
    rejected: List[Rejected] = []

    def visit(index: np.ndarray) -> None:
        part = batch.select(index)
        try:
            values[index] = compute(part)[0]
            return
        except StructureError as e:
            if len(index) == 1:
                k = int(index[0])
                name = "" if batch.ids[k] is None else str(batch.ids[k])
                reason = getattr(e, "reason", None) or str(e)
                label = f"structure {k} ({name})" if name else f"structure {k}"
                rejected.append(Rejected(k, name, f"{label}: {reason}"))
                return
        half = len(index) // 2
        visit(index[:half])
        visit(index[half:])

    if len(batch):
        visit(np.arange(len(batch)))
    return values, rejected


def _check_preset(preset: str) -> None:
    if preset not in STRUCTURE_PRESETS:
        raise InvalidArgumentError(f"unknown structure preset {preset!r}; known: {', '.join(STRUCTURE_PRESETS)}")


def featurize_structures(
    structures: StructuresLike,
    preset: str = "ward2017",
    *,
    symprec: float = 0.01,
    errors: str = "raise",
    n_threads: Optional[int] = None,
    dtype: Union[type, np.dtype, str] = np.float64,
) -> Featurized:
    """Featurize every structure of a batch with a structure preset: ``"ward2017"``,
    ``"crystalnn_ops"`` or ``"ofm"`` (see the module docs).

    ``structures``: a :class:`~matxfer.structures.StructureBatch`, a file path, pymatgen / ASE
    structures or dicts (anything :func:`matxfer.structures.as_batch` reads); one row per structure,
    in order. ``symprec`` (angstrom) is the symmetry tolerance of the symmetry columns.
    ``errors="raise"``: the first structure that cannot be featurized (not periodic along a, b and c,
    overlapping atoms, no space group, over a memory ceiling) raises
    :class:`~matxfer.exceptions.StructureError` naming its index and id; ``"nan"``: its row is NaN
    and it is listed in ``result.rejected`` (``input`` is its id). ``n_threads`` defaults to
    ``MATXFER_NUM_THREADS`` or all cores; the values are bitwise the same for every thread count.
    """
    _check_preset(preset)
    if errors not in ("raise", "nan"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'nan', got {errors!r}")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InvalidArgumentError(f"dtype must be float64 or float32, got {dt}")
    batch = as_batch(structures)
    if preset == "ward2017":
        values, failed = _core.ward2017_features(batch._native(), symprec, errors == "raise", n_threads)
        rejected = [Rejected(int(k), "" if batch.ids[k] is None else str(batch.ids[k]), reason) for k, reason in failed]
        return Featurized(values.astype(dt, copy=False), structure_feature_names(preset), rejected)
    compute = _compute(preset, symprec, n_threads)
    if errors == "raise":
        values, names = compute(batch)  # the first failure raises, naming its index in this batch
        return Featurized(values.astype(dt, copy=False), names, [])
    names = structure_feature_names(preset)
    values, rejected = _isolating_failures(compute, batch, len(names))
    return Featurized(values.astype(dt, copy=False), names, rejected)


__all__ = ["STRUCTURE_PRESETS", "featurize_structures", "structure_feature_names"]
