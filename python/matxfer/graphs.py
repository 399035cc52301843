"""Batched crystal graphs for message-passing models (CGCNN, MEGNet, M3GNet, ALIGNN style).

One call turns many structures into one batch of contiguous arrays, built in parallel in Rust:

* ``numbers``     (N,) int64 atomic numbers;
* ``edge_index``  (2, E) int64: row 0 the center ``i``, row 1 the neighbor ``j`` (global node ids);
* ``shifts``      (E, 3) int32 image shift ``S`` of ``j``;
* ``distances``   (E,) float64, angstrom; ``vectors`` (E, 3) ``r_j - r_i + S @ lattice`` if asked;
* ``rbf``         (E, n_rbf) float64 Gaussian features ``exp(-((d - mu_k) / width)^2)``;
* ``node_graph``  (N,) int64 graph of each node; ``graph_ptr``/``edge_ptr`` (G + 1,) offsets;
* ``triplet_index`` (2, T) int64 pairs of edges ``(i->j, i->k)`` sharing their center with both
  lengths within ``three_body_cutoff``, and ``triplet_cos`` (T,) the cosine of the angle j-i-k.

PyG users: ``flow="target_to_source"`` matches row 0 = center; or use ``edge_index.flip(0)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError
from matxfer.structures import StructuresLike, as_batch


@dataclass
class BatchedGraph:
    numbers: np.ndarray
    edge_index: np.ndarray
    shifts: np.ndarray
    distances: np.ndarray
    node_graph: np.ndarray
    graph_ptr: np.ndarray
    edge_ptr: np.ndarray
    vectors: Optional[np.ndarray] = None
    rbf: Optional[np.ndarray] = None
    triplet_index: Optional[np.ndarray] = None
    triplet_cos: Optional[np.ndarray] = None
    triplet_ptr: Optional[np.ndarray] = None

    @property
    def n_graphs(self) -> int:
        return len(self.graph_ptr) - 1

    @property
    def n_nodes(self) -> int:
        return len(self.numbers)

    @property
    def n_edges(self) -> int:
        return len(self.distances)

    def __repr__(self) -> str:
        extra = "" if self.triplet_cos is None else f", {len(self.triplet_cos)} triplets"
        return f"BatchedGraph({self.n_graphs} graphs, {self.n_nodes} nodes, {self.n_edges} edges{extra})"

    def to_torch(self, device=None) -> dict:
        """The arrays as torch tensors (shared memory with numpy, no copy, when on CPU)."""
        import torch

        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                t = torch.from_numpy(np.ascontiguousarray(v))
                out[f.name] = t if device is None else t.to(device)
        return out


def build_graphs(
    structures: StructuresLike,
    cutoff: float = 5.0,
    *,
    max_neighbors: Optional[int] = None,
    k: Optional[int] = None,
    tie_tolerance: float = 1e-6,
    cutoff_step: float = 1.0,
    max_cutoff: float = 16.0,
    few_neighbors: str = "keep",
    rbf: Union[None, int, dict] = None,
    rbf_dtype: str = "float64",
    three_body_cutoff: Optional[float] = None,
    vectors: bool = False,
    max_edges: Optional[int] = None,
    min_distance: Optional[float] = 0.1,
    n_threads: Optional[int] = None,
) -> BatchedGraph:
    """Build the graphs of many structures into one batch.

    Edge selection (pick at most one of ``max_neighbors`` and ``k``):

    * neither: radius graph, every neighbor within ``cutoff`` angstrom;
    * ``max_neighbors=m`` (CGCNN: ``cutoff=8, max_neighbors=12``): the m nearest neighbors within
      ``cutoff``; ties at the m-th distance are broken by neighbor index then shift;
    * ``k=n`` (ALIGNN: ``k=12``): the n nearest neighbors plus all tied with the n-th (within
      ``tie_tolerance`` angstrom). The radius starts at ``cutoff`` and grows by ``cutoff_step`` up
      to ``max_cutoff`` until every atom has n neighbors.

    ``few_neighbors``: policy for an atom with fewer than m/n neighbors after the search:
    ``"keep"`` keeps those found (no padding, no fake edges); ``"error"`` raises StructureError
    naming the structure and the atom.

    ``rbf``: number of Gaussian centers evenly spaced on [0, cutoff] (width = spacing), or a dict
    with ``start``, ``stop``, ``n`` and optional ``width`` (angstrom).

    ``rbf_dtype``: ``"float64"`` (default) or ``"float32"`` (half the memory; computed in float64
    and rounded once).

    ``three_body_cutoff``: also build bond-angle triplets between edges of the same center that are
    both shorter than this (M3GNet uses 4 angstrom).

    ``max_edges`` bounds the edges of every structure and of the batch: a structure whose
    estimated or actual edge count exceeds it raises StructureError naming it, before the memory
    is spent. ``min_distance`` (angstrom, default 0.1; None disables) refuses structures with
    overlapping atoms.
    """
    if max_neighbors is not None and k is not None:
        raise InvalidArgumentError("pass at most one of max_neighbors and k")
    if max_neighbors is not None:
        selection, kk = "max_neighbors", max_neighbors
    elif k is not None:
        selection, kk = "knn", k
    else:
        selection, kk = "radius", None
    rbf_arg = None
    if rbf is not None:
        if isinstance(rbf, dict):
            rbf_arg = (rbf.get("start", 0.0), rbf.get("stop", cutoff), rbf["n"], rbf.get("width"))
        else:
            rbf_arg = (0.0, cutoff, rbf, None)
    batch = as_batch(structures)
    d = _core.build_graph_batch(
        batch._native(),
        cutoff,
        selection,
        kk,
        float(tie_tolerance),
        float(cutoff_step),
        float(max_cutoff),
        few_neighbors,
        rbf_arg,
        three_body_cutoff,
        vectors,
        max_edges,
        n_threads,
        _float32(rbf_dtype),
        min_distance,
    )
    return BatchedGraph(**d)


def _float32(dtype) -> bool:
    name = np.dtype(dtype).name
    if name not in ("float32", "float64"):
        raise InvalidArgumentError(f"rbf_dtype must be float32 or float64, got {dtype!r}")
    return name == "float32"


__all__ = ["BatchedGraph", "build_graphs"]
