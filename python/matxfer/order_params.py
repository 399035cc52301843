"""Local structure order parameters (pymatgen's ``LocalStructOrderParams``) for explicit neighbor
sets, computed in the Rust core for whole batches.

See docs/order_parameters.md. :func:`order_parameters` takes a batch of structures, the neighbors
of every site as rows ``(i, j, S)`` and a list of order-parameter types; it returns one float64
column per type, NaN where pymatgen returns ``None``.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import ArgumentTypeError, InvalidArgumentError

OpSpec = Union[str, Tuple[str, Optional[Mapping[Any, float]]]]

#: The order parameters of matminer's ``CrystalNNFingerprint.from_preset("ops")`` (without its
#: ``"wt"`` entries), in matminer's order: ``(coordination number, motif label, pymatgen type,
#: parameters)``; ``parameters`` is ``None`` for pymatgen's defaults. matminer names the feature
#: ``f"{label} CN_{cn}"``. Pass ``[(t, p) for _, _, t, p in CRYSTALNN_OPS]`` as ``types``.
CRYSTALNN_OPS: Tuple[Tuple[int, str, str, Optional[dict]], ...] = tuple(
    (cn, label, op_type, (dict(params) if params else None)) for cn, label, op_type, params in _core.crystalnn_ops()
)

#: The order-parameter types (pymatgen names) that :func:`order_parameters` supports.
SUPPORTED_TYPES: Tuple[str, ...] = tuple(_core.order_parameter_types())


def _rows(neighbors) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, shifts, pair_ptr)`` from a NeighborList, VoronoiCells, dict or 4-tuple."""
    if isinstance(neighbors, (tuple, list)) and len(neighbors) == 4:
        i, j, shifts, ptr = neighbors
    elif isinstance(neighbors, Mapping):
        try:
            i, j, shifts, ptr = neighbors["i"], neighbors["j"], neighbors["shifts"], neighbors["pair_ptr"]
        except KeyError as exc:
            raise InvalidArgumentError(f"neighbors: missing key {exc.args[0]!r} (need i, j, shifts, pair_ptr)") from None
    elif all(hasattr(neighbors, a) for a in ("i", "j", "shifts")) and (
        hasattr(neighbors, "edge_ptr") or hasattr(neighbors, "face_ptr")
    ):
        i, j, shifts = neighbors.i, neighbors.j, neighbors.shifts
        ptr = neighbors.edge_ptr if hasattr(neighbors, "edge_ptr") else neighbors.face_ptr
    else:
        raise ArgumentTypeError(
            "neighbors must be a NeighborList, VoronoiCells, a dict or a tuple (i, j, shifts, pair_ptr), "
            f"got {type(neighbors).__name__}"
        )

    def array(name, value, dtype, shape):
        try:
            return np.ascontiguousarray(value, dtype=dtype).reshape(shape)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgumentError(f"neighbors: {name} cannot be read as {np.dtype(dtype).name}: {exc}") from None

    return (
        array("i", i, np.int64, (-1,)),
        array("j", j, np.int64, (-1,)),
        array("shifts", shifts, np.int32, (-1, 3)),
        array("pair_ptr", ptr, np.int64, (-1,)),
    )


def _specs(types: Sequence[OpSpec]) -> List[Tuple[str, Optional[List[Tuple[str, float]]]]]:
    if isinstance(types, str):
        raise ArgumentTypeError("types must be a list of type names or (name, parameters) pairs, got a str")
    out: List[Tuple[str, Optional[List[Tuple[str, float]]]]] = []
    for k, t in enumerate(types):
        if isinstance(t, str):
            out.append((t, None))
        elif isinstance(t, (tuple, list)) and len(t) == 2 and isinstance(t[0], str):
            params: Optional[List[Tuple[str, float]]] = None
            if t[1] is not None:
                if not isinstance(t[1], Mapping):
                    raise ArgumentTypeError(f"types[{k}]: parameters must be a dict or None, got {type(t[1]).__name__}")
                try:
                    params = [(str(key), float(value)) for key, value in t[1].items()]
                except (TypeError, ValueError) as exc:
                    raise ArgumentTypeError(f"types[{k}]: parameter values must be numbers: {exc}") from None
            out.append((t[0], params))
        else:
            raise ArgumentTypeError(f"types[{k}] must be a type name or a (name, parameters) pair, got {t!r}")
    return out


def order_parameters(structures, neighbors, types: Sequence[OpSpec], *, n_threads: Optional[int] = None) -> np.ndarray:
    """Order parameters of every site of ``structures`` for the given neighbor sets.

    ``neighbors`` are rows ``(i, j, S)``: a :class:`~matxfer.structures.NeighborList`, a
    :class:`~matxfer.structures.VoronoiCells`, a dict with ``i, j, shifts, pair_ptr`` or the tuple
    ``(i, j, shifts, pair_ptr)``, where ``i``/``j`` are site indices local to each structure,
    ``shifts`` (E, 3) the integer image ``S`` of ``j`` (``r_ij = r_j - r_i + S @ lattice``) and
    ``pair_ptr`` (S + 1,) the rows of each structure. Within a structure rows are grouped by
    center in increasing ``i``; each site's neighbors are taken in row order.

    ``types``: pymatgen type names (``"oct_max"``, ``"q6"``, ...; :data:`SUPPORTED_TYPES`), or
    ``(name, parameters)`` pairs where ``parameters`` overrides pymatgen's defaults by key
    (``{"TA": 0.5, "IGW_TA": 15.15}``); see :data:`CRYSTALNN_OPS`.

    Returns ``(N_sites, len(types))`` float64, sites in batch order; NaN where pymatgen returns
    ``None`` (too few neighbors for the type). Each type is computed as a pymatgen
    ``LocalStructOrderParams([type], parameters=[params])`` would (one type per instance, as
    matminer uses it). Bad neighbor rows raise ``StructureError`` naming the structure and site;
    unknown types or parameters ``InvalidArgumentError``. The result does not depend on
    ``n_threads``.
    """
    from matxfer.structures import as_batch

    batch = as_batch(structures)
    i, j, shifts, ptr = _rows(neighbors)
    return _core.order_parameters(batch._native(), i, j, shifts, ptr, _specs(types), n_threads)
