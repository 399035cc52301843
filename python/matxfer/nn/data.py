"""Training data held as whole arrays; batches are cut by index, never collated sample by sample.

``ArrayData`` holds descriptor-style inputs (every array has the samples on axis 0).
``GraphData`` holds matxfer's batched crystal graphs in CSR form and cuts sub-batches of graphs
with vectorised index arithmetic (``repeat_interleave`` and offsets), so a batch of thousands
of graphs costs a handful of tensor operations.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArrayData", "GraphData", "as_targets"]


def as_targets(y: np.ndarray | Tensor | None, n: int) -> Optional[Tensor]:
    """Targets as float32 [n, n_tasks]; NaN marks a missing label."""
    if y is None:
        return None
    t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"targets must have shape ({n},) or ({n}, n_tasks), got {tuple(t.shape)}")
    return t


class ArrayData:
    """Inputs (a tuple of arrays sharing axis 0), targets with NaN for missing labels, sample weights."""

    def __init__(
        self,
        inputs: Sequence[np.ndarray | Tensor] | np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
        weight: np.ndarray | Tensor | None = None,
    ) -> None:
        if isinstance(inputs, (np.ndarray, Tensor)):
            inputs = (inputs,)
        tensors = []
        for a in inputs:
            t = torch.as_tensor(a) if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))
            if t.is_floating_point():
                t = t.float()
            tensors.append(t)
        if not tensors:
            raise ValueError("ArrayData needs at least one input array")
        self.n = int(tensors[0].shape[0])
        if any(int(t.shape[0]) != self.n for t in tensors):
            raise ValueError("all input arrays must have the same number of rows")
        self.inputs: Tuple[Tensor, ...] = tuple(tensors)
        self.y = as_targets(y, self.n)
        self.weight = None if weight is None else torch.as_tensor(np.asarray(weight, dtype=np.float32))
        if self.weight is not None and self.weight.shape != (self.n,):
            raise ValueError(f"weight must have shape ({self.n},)")

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        ts = [*self.inputs, self.y, self.weight]
        return sum(t.element_size() * t.numel() for t in ts if t is not None)

    def _map(self, fn) -> ArrayData:
        out = ArrayData.__new__(ArrayData)
        out.inputs = tuple(fn(t) for t in self.inputs)
        out.n = int(out.inputs[0].shape[0])
        out.y = None if self.y is None else fn(self.y)
        out.weight = None if self.weight is None else fn(self.weight)
        return out

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ArrayData:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> ArrayData:
        return self._map(lambda t: t.pin_memory())

    def subset(self, index: np.ndarray | Tensor) -> ArrayData:
        idx = index.long() if isinstance(index, Tensor) else torch.as_tensor(np.asarray(index), dtype=torch.long)
        return self._map(lambda t: t.index_select(0, idx.to(t.device)))

    def batch(self, index: Tensor) -> Tuple[Tuple, Optional[Tensor], Optional[Tensor]]:
        """(model inputs, targets, weights) for the rows in ``index``."""
        sub = self.subset(index)
        return sub.inputs, sub.y, sub.weight


_TENSORS = ("z", "edge_index", "distances", "graph_ptr", "node_graph", "edge_ptr", "y", "weight", "rbf",
            "triplet_index", "triplet_cos", "triplet_ptr")


class GraphData:
    """Batched crystal graphs (CSR over graphs) with one target row per graph.

    atomic_numbers int64 [N]; edge_index int64 [2, E] with global node indices (row 0 = centre);
    distances float [E] (angstrom); graph_ptr int64 [G + 1] (nodes of graph g are
    ``graph_ptr[g]:graph_ptr[g+1]``). ``node_graph`` is derived when not given.
    ``rbf`` float [E, K] (optional): the core's Gaussian expansion of the distances
    (``build_graphs(..., rbf=model.graph_rbf())``); when present, every batch passes it to the
    model as a sixth input, so the network uses it instead of expanding the distances itself.
    ``triplet_index`` int64 [2, T] / ``triplet_cos`` float [T] (optional): the core's bond-angle
    triplets (pairs of edges of the same centre, as indices into ``edge_index``; ``build_graphs(...,
    three_body_cutoff=...)``); when present, every batch passes them as the seventh and eighth inputs
    (the sixth is then the rbf or None), renumbered to the batch's edges.
    """

    def __init__(
        self,
        atomic_numbers,
        edge_index,
        distances,
        graph_ptr,
        y=None,
        node_graph=None,
        weight=None,
        rbf=None,
        triplet_index=None,
        triplet_cos=None,
    ) -> None:
        self.z = torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.long)
        self.edge_index = torch.as_tensor(np.asarray(edge_index), dtype=torch.long)
        self.distances = torch.as_tensor(np.asarray(distances), dtype=torch.float32)
        self.graph_ptr = torch.as_tensor(np.asarray(graph_ptr), dtype=torch.long)
        self.n = int(self.graph_ptr.numel() - 1)
        n_nodes = self.graph_ptr[1:] - self.graph_ptr[:-1]
        if node_graph is None:
            node_graph = torch.repeat_interleave(torch.arange(self.n), n_nodes)
        self.node_graph = torch.as_tensor(np.asarray(node_graph), dtype=torch.long)
        if self.edge_index.ndim != 2 or self.edge_index.shape[0] != 2:
            raise ValueError("edge_index must have shape (2, E)")
        if self.distances.shape != (self.edge_index.shape[1],):
            raise ValueError("distances must have one entry per edge")
        self.rbf = None if rbf is None else torch.as_tensor(np.asarray(rbf) if not isinstance(rbf, Tensor) else rbf,
                                                            dtype=torch.float32)
        if self.rbf is not None and (self.rbf.ndim != 2 or self.rbf.shape[0] != self.distances.shape[0]):
            raise ValueError(f"rbf must have shape (E, n_rbf) with E = {self.distances.shape[0]} edges, got {tuple(self.rbf.shape)}")
        if self.node_graph.shape != self.z.shape or int(self.graph_ptr[-1]) != self.z.numel():
            raise ValueError("atomic_numbers, node_graph and graph_ptr disagree on the number of nodes")
        # Group edges by graph once so a batch of graphs is a set of contiguous edge ranges.
        edge_graph = self.node_graph[self.edge_index[0]]
        order = torch.argsort(edge_graph, stable=True)
        self.edge_index = self.edge_index[:, order]
        self.distances = self.distances[order]
        if self.rbf is not None:
            self.rbf = self.rbf[order]
        counts = torch.bincount(edge_graph, minlength=self.n)
        self.edge_ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.triplet_index: Optional[Tensor] = None
        self.triplet_cos: Optional[Tensor] = None
        self.triplet_ptr: Optional[Tensor] = None
        if (triplet_index is None) != (triplet_cos is None):
            raise ValueError("triplet_index and triplet_cos come together: give both or neither")
        if triplet_index is not None:
            self._set_triplets(triplet_index, triplet_cos, order, edge_graph[order])
        self.y = as_targets(y, self.n)
        self.weight = None if weight is None else torch.as_tensor(np.asarray(weight, dtype=np.float32))

    def _set_triplets(self, triplet_index, triplet_cos, order: Tensor, edge_graph: Tensor) -> None:
        """Store triplets renumbered to the graph-sorted edges and grouped by graph (``triplet_ptr``)."""
        t = torch.as_tensor(np.asarray(triplet_index) if not isinstance(triplet_index, Tensor) else triplet_index,
                            dtype=torch.long)
        c = torch.as_tensor(np.asarray(triplet_cos) if not isinstance(triplet_cos, Tensor) else triplet_cos,
                            dtype=torch.float32)
        n_edges = int(order.numel())
        if t.ndim != 2 or t.shape[0] != 2 or c.shape != (t.shape[1],):
            raise ValueError(f"triplet_index must have shape (2, T) and triplet_cos (T,), got {tuple(t.shape)} and {tuple(c.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_edges):
            raise ValueError(f"triplet_index refers to edges outside 0..{n_edges - 1}")
        new_position = torch.empty_like(order)
        new_position[order] = torch.arange(n_edges)
        t = new_position[t]
        graph_of = edge_graph[t[0]]
        if not torch.equal(graph_of, edge_graph[t[1]]):
            bad = int(torch.nonzero(graph_of != edge_graph[t[1]])[0, 0])
            raise ValueError(f"triplet {bad} joins edges of two different graphs")
        by_graph = torch.argsort(graph_of, stable=True)
        self.triplet_index, self.triplet_cos = t[:, by_graph], c[by_graph]
        self.triplet_ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(graph_of, minlength=self.n).cumsum(0)])

    @classmethod
    def from_graphs(cls, graphs, y=None, weight=None) -> GraphData:
        """Wrap a :class:`matxfer.graphs.BatchedGraph` (from :func:`matxfer.graphs.build_graphs`)
        with one target row per structure; the arrays are shared, not copied, where dtypes allow."""
        return cls(
            torch.from_numpy(np.ascontiguousarray(graphs.numbers)),
            torch.from_numpy(np.ascontiguousarray(graphs.edge_index)),
            graphs.distances,
            torch.from_numpy(np.ascontiguousarray(graphs.graph_ptr)),
            y=y,
            node_graph=torch.from_numpy(np.ascontiguousarray(graphs.node_graph)),
            weight=weight,
            rbf=None if graphs.rbf is None else torch.from_numpy(np.ascontiguousarray(graphs.rbf)),
            triplet_index=None if graphs.triplet_index is None else torch.from_numpy(np.ascontiguousarray(graphs.triplet_index)),
            triplet_cos=None if graphs.triplet_cos is None else np.ascontiguousarray(graphs.triplet_cos),
        )

    @classmethod
    def from_structures(cls, structures, cutoff: float = 5.0, y=None, weight=None, **graph_options) -> GraphData:
        """Build crystal graphs of ``structures`` (anything :func:`matxfer.graphs.build_graphs`
        accepts: a file, a StructureBatch, pymatgen/ASE objects) and wrap them for training.
        ``graph_options`` go to ``build_graphs`` (e.g. ``max_neighbors=12``)."""
        from matxfer.graphs import build_graphs

        return cls.from_graphs(build_graphs(structures, cutoff, **graph_options), y=y, weight=weight)

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        ts = [self.z, self.edge_index, self.distances, self.graph_ptr, self.node_graph, self.edge_ptr, self.y, self.rbf,
              self.triplet_index, self.triplet_cos, self.triplet_ptr]
        return sum(t.element_size() * t.numel() for t in ts if t is not None)

    def to(self, device, non_blocking: bool = False) -> GraphData:
        out = GraphData.__new__(GraphData)
        out.n = self.n
        for name in _TENSORS:
            t = getattr(self, name)
            setattr(out, name, None if t is None else t.to(device, non_blocking=non_blocking))
        return out

    def pin_memory(self) -> GraphData:
        out = self.to("cpu")
        for name in _TENSORS:
            t = getattr(out, name)
            if t is not None:
                setattr(out, name, t.pin_memory())
        return out

    @staticmethod
    def _ranges(ptr: Tensor, index: Tensor) -> Tuple[Tensor, Tensor]:
        """Concatenated ``ptr[g]:ptr[g+1]`` ranges for g in index, and the length of each range."""
        starts, lengths = ptr[index], ptr[index + 1] - ptr[index]
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        flat = torch.arange(total, device=ptr.device) - torch.repeat_interleave(offsets, lengths, output_size=total)
        return flat + torch.repeat_interleave(starts, lengths, output_size=total), lengths

    def batch(self, index: Tensor):
        index = index.to(self.graph_ptr.device)
        nodes, n_nodes = self._ranges(self.graph_ptr, index)
        edges, n_edges = self._ranges(self.edge_ptr, index)
        new_start = torch.cumsum(n_nodes, 0) - n_nodes
        # Node i of old graph g moves to new_start[k] + (i - graph_ptr[g]) where g = index[k].
        shift = torch.repeat_interleave(new_start - self.graph_ptr[index], n_edges, output_size=edges.numel())
        edge_index = self.edge_index[:, edges] + shift
        node_graph = torch.repeat_interleave(torch.arange(index.numel(), device=index.device), n_nodes)
        inputs: Tuple = (self.z[nodes], edge_index, self.distances[edges], node_graph, int(index.numel()))
        if self.rbf is not None or self.triplet_index is not None:
            inputs = (*inputs, None if self.rbf is None else self.rbf[edges])
        if self.triplet_index is not None and self.triplet_cos is not None and self.triplet_ptr is not None:
            trips, n_trips = self._ranges(self.triplet_ptr, index)
            # Edge e of old graph g moves to new_edge_start[k] + (e - edge_ptr[g]) where g = index[k].
            new_edge_start = torch.cumsum(n_edges, 0) - n_edges
            edge_shift = torch.repeat_interleave(new_edge_start - self.edge_ptr[index], n_trips, output_size=trips.numel())
            inputs = (*inputs, self.triplet_index[:, trips] + edge_shift, self.triplet_cos[trips])
        y = None if self.y is None else self.y[index]
        w = None if self.weight is None else self.weight[index]
        return inputs, y, w

    def subset(self, index) -> GraphData:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        inputs, y, w = self.batch(idx)
        z, edge_index, distances, node_graph, n = inputs[:5]
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(node_graph, minlength=n).cumsum(0)])
        return GraphData(z, edge_index, distances, ptr, y=y, node_graph=node_graph, weight=w,
                         rbf=inputs[5] if len(inputs) > 5 else None,
                         triplet_index=inputs[6] if len(inputs) > 6 else None,
                         triplet_cos=inputs[7] if len(inputs) > 7 else None)

    def with_targets(self, y=None, weight=None) -> GraphData:
        """The same graphs (tensors shared, not copied) with other targets and weights."""
        out = self.to(self.z.device)
        out.y = as_targets(y, self.n)
        out.weight = None if weight is None else torch.as_tensor(np.asarray(weight, dtype=np.float32))
        if out.weight is not None and out.weight.shape != (self.n,):
            raise ValueError(f"weight must have shape ({self.n},)")
        return out

    @staticmethod
    def concat(parts: Sequence[GraphData]) -> GraphData:
        """One GraphData holding the graphs of ``parts`` in order (targets and weights too, when every
        part has them; the targets must have the same number of columns)."""
        parts = list(parts)
        if not parts:
            raise ValueError("concat needs at least one GraphData")
        if len({p.rbf is None for p in parts}) != 1:
            raise ValueError("concat: either every part carries rbf or none does")
        if len({p.triplet_index is None for p in parts}) != 1:
            raise ValueError("concat: either every part carries bond-angle triplets or none does")
        node_offsets = np.cumsum([0] + [int(p.z.numel()) for p in parts[:-1]])
        graph_offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
        z = torch.cat([p.z for p in parts])
        edge_index = torch.cat([p.edge_index + int(o) for p, o in zip(parts, node_offsets)], dim=1)
        node_graph = torch.cat([p.node_graph + int(o) for p, o in zip(parts, graph_offsets)])
        ptr = torch.cat([torch.zeros(1, dtype=torch.long)] + [p.graph_ptr[1:] + int(o) for p, o in zip(parts, node_offsets)])
        ys = [p.y for p in parts if p.y is not None]
        ws = [p.weight for p in parts if p.weight is not None]
        y = torch.cat(ys) if len(ys) == len(parts) else None
        w = torch.cat(ws) if len(ws) == len(parts) else None
        rbf = None if parts[0].rbf is None else torch.cat([p.rbf for p in parts if p.rbf is not None])
        triplet_index = triplet_cos = None
        if parts[0].triplet_index is not None:
            edge_offsets = np.cumsum([0] + [int(p.distances.numel()) for p in parts[:-1]])
            triplet_index = torch.cat([p.triplet_index + int(o) for p, o in zip(parts, edge_offsets)
                                       if p.triplet_index is not None], dim=1)
            triplet_cos = torch.cat([p.triplet_cos for p in parts if p.triplet_cos is not None])
        return GraphData(z, edge_index, torch.cat([p.distances for p in parts]), ptr, y=y, node_graph=node_graph,
                         weight=w, rbf=rbf, triplet_index=triplet_index, triplet_cos=triplet_cos)
