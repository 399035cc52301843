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
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.featurize import Featurized, Rejected
from matxfer.structures import StructuresLike, as_batch

#: Structure presets and their widths.
STRUCTURE_PRESETS = ("ward2017",)


def structure_feature_names(preset: str = "ward2017") -> list[str]:
    """Feature names of a structure preset, in column order."""
    _check_preset(preset)
    return list(_core.ward2017_feature_names())


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
    """Featurize every structure of a batch with a structure preset (see the module docs).

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
    values, failed = _core.ward2017_features(batch._native(), symprec, errors == "raise", n_threads)
    rejected = [Rejected(int(k), "" if batch.ids[k] is None else str(batch.ids[k]), reason) for k, reason in failed]
    return Featurized(values.astype(dt, copy=False), structure_feature_names(preset), rejected)


__all__ = ["STRUCTURE_PRESETS", "featurize_structures", "structure_feature_names"]
