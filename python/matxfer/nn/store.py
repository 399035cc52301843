"""Train graph models from an on-disk graph store (``matxfer graphs``) without loading it.

:class:`GraphStoreData` has the interface the :class:`~matxfer.nn.Trainer` cuts batches from
(``len``, ``y``, ``batch(index)``, ``subset(index)``) and reads only the nodes and edges of the
graphs in each batch from the memory-mapped arrays; the operating system's page cache decides what
stays in memory. Only the (G + 1,) offset arrays and the targets are held in RAM.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

__all__ = ["GraphStoreData"]


def _ranges(ptr: np.ndarray, index: np.ndarray):
    starts = ptr[index]
    lengths = ptr[index + 1] - starts
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    flat = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return flat, lengths


class GraphStoreData:
    """Graphs of a :class:`matxfer.graph_store.GraphStore` (or its path) with one target per graph.

    ``y``: targets (default: the store's ``y`` array, when it was written with ``--target``).
    Graphs marked invalid in the store (structures that could not be read) are left out unless
    ``index`` is given explicitly.
    """

    def __init__(self, store, y=None, weight=None, index: Optional[np.ndarray] = None) -> None:
        from matxfer.graph_store import GraphStore

        from .data import as_targets

        self.store = store if isinstance(store, GraphStore) else GraphStore(store)
        self.graph_ptr = np.asarray(self.store.graph_ptr, dtype=np.int64)
        self.edge_ptr = np.asarray(self.store.edge_ptr, dtype=np.int64)
        if index is None:
            index = np.flatnonzero(np.asarray(self.store.valid) == 1)
        self.index = np.asarray(index, dtype=np.int64)
        self.n = len(self.index)
        if y is None and "y" in self.store.arrays:
            y = np.asarray(self.store.y)[self.index]
        self.y = as_targets(y, self.n)
        self.weight = None if weight is None else torch.as_tensor(np.asarray(weight, dtype=np.float32))
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"GraphStoreData({self.n:,} graphs from {self.store.path})"

    def nbytes(self) -> int:
        # Reported as the size on disk: the trainer then streams batches instead of moving the
        # whole set to an accelerator.
        return sum(int(a.nbytes) for a in self.store.arrays.values())

    def to(self, device, non_blocking: bool = False) -> GraphStoreData:
        if torch.device(device).type != "cpu":
            raise ValueError("GraphStoreData stays on the CPU; batches are moved to the device one at a time")
        return self

    def pin_memory(self) -> GraphStoreData:
        return self

    def subset(self, index) -> GraphStoreData:
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        out = GraphStoreData.__new__(GraphStoreData)
        out.store, out.graph_ptr, out.edge_ptr, out.device = self.store, self.graph_ptr, self.edge_ptr, self.device
        out.index = self.index[index]
        out.n = len(out.index)
        out.y = None if self.y is None else self.y[torch.as_tensor(index)]
        out.weight = None if self.weight is None else self.weight[torch.as_tensor(index)]
        return out

    def batch(self, index):
        """(model inputs, targets, weights) for the graphs at positions ``index``; the inputs are
        those of :meth:`matxfer.nn.GraphData.batch`: (z, edge_index, distances, node_graph, n_graphs)."""
        rows = index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
        graphs = self.index[rows]
        nodes, n_nodes = _ranges(self.graph_ptr, graphs)
        edges, n_edges = _ranges(self.edge_ptr, graphs)
        new_start = np.cumsum(n_nodes) - n_nodes
        # Edge endpoints are stored local to their graph: add the graph's first node in the batch.
        edge_index = np.asarray(self.store.edge_index[edges], dtype=np.int64).T + np.repeat(new_start, n_edges)[None, :]
        node_graph = np.repeat(np.arange(len(graphs), dtype=np.int64), n_nodes)
        inputs = (
            torch.from_numpy(np.asarray(self.store.numbers[nodes], dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(edge_index)),
            torch.from_numpy(np.asarray(self.store.distances[edges], dtype=np.float32)),
            torch.from_numpy(node_graph),
            len(graphs),
        )
        t = torch.as_tensor(rows, dtype=torch.long)
        y = None if self.y is None else self.y[t]
        w = None if self.weight is None else self.weight[t]
        return inputs, y, w
