"""A batched-graph store on disk: structures -> crystal graphs, written chunk by chunk, read back
with memory maps so a trainer never holds the whole set.

Layout of a store folder (all arrays raw little-endian, C order, no header; never pickle):

* ``index.json``      format, version, counts, build options and, per array, file, dtype and shape;
                      written last, so a store without it is incomplete;
* ``numbers.bin``     (N,) int64 atomic numbers;
* ``edge_index.bin``  (E, 2) int32 (center i, neighbor j) as node ids local to their graph;
* ``distances.bin``   (E,) float32, angstrom;
* ``graph_ptr.bin``   (G + 1,) int64 node offsets; ``edge_ptr.bin`` (G + 1,) int64 edge offsets;
* ``valid.bin``       (G,) uint8, 0 for a structure that could not be read or built (no nodes);
* ``y.bin``           (G,) float64 targets (NaN where missing), when ``target`` was given;
* ``ids.txt``         one id per graph (file:line or file name).

``np.memmap`` opens each array without reading it; :class:`GraphStore` does that, and
:class:`matxfer.nn.GraphStoreData` trains from a store.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from matxfer.streaming import InputFileError, Progress, StreamSummary, _ErrorReport, iter_structure_chunks

__all__ = ["GraphStore", "write_graph_store", "FORMAT"]

FORMAT = "matxfer-graph-store"
VERSION = 1
_DTYPES = {
    "numbers": ("<i8", 1),
    "edge_index": ("<i4", 2),
    "distances": ("<f4", 1),
    "graph_ptr": ("<i8", 1),
    "edge_ptr": ("<i8", 1),
    "valid": ("|u1", 1),
    "y": ("<f8", 1),
}


def _target_values(units, target: str):
    """Targets of the structures of one chunk, read from the JSON line or the extxyz comment line."""
    values = np.full(len(units), np.nan)
    for k, unit in enumerate(units):
        text = unit.text
        try:
            if text.lstrip().startswith("{"):
                v = json.loads(text).get(target)
            else:
                comment = text.split("\n", 2)[1]
                v = None
                for token in comment.replace('"', " ").split():
                    if token.startswith(f"{target}="):
                        v = token.split("=", 1)[1]
            values[k] = float(v) if v is not None else np.nan
        except (ValueError, TypeError, IndexError):
            values[k] = np.nan
    return values


def write_graph_store(
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cutoff: float = 5.0,
    max_neighbors: Optional[int] = None,
    target: Optional[str] = None,
    chunk_size: int = 5_000,
    occupancy_policy: str = "error",
    n_threads: Optional[int] = None,
    progress: Optional[bool] = None,
) -> StreamSummary:
    """Stream structures from ``input`` into a graph store folder ``out`` (replaced if it exists).

    Every structure keeps its place; one that cannot be read or built gets an empty graph,
    ``valid = 0``, and a line in ``out/errors.csv``."""
    from matxfer.graphs import build_graphs
    from matxfer.streaming import _concat

    input, out = Path(input), Path(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files = {name: open(tmp / f"{name}.bin", "wb") for name in _DTYPES if name != "y" or target}
    ids = open(tmp / "ids.txt", "w", encoding="utf-8")
    report = _ErrorReport(tmp / "errors.csv")
    summary = StreamSummary(str(input), str(out), error_report=str(out / "errors.csv"))
    bar = Progress(f"graphs {input.name}", enabled=progress, unit="structures")
    n_nodes = n_edges = n_graphs = 0
    files["graph_ptr"].write(np.zeros(1, "<i8").tobytes())
    files["edge_ptr"].write(np.zeros(1, "<i8").tobytes())
    try:
        for units, batch, good, bad in iter_structure_chunks(input, chunk_size, occupancy_policy):
            n = len(units)
            bad = list(bad)
            graphs, built = None, list(range(len(good)))
            if len(good):
                try:
                    graphs = build_graphs(batch, cutoff, max_neighbors=max_neighbors, n_threads=n_threads)
                except ValueError:
                    # One bad structure fails the whole call: build them one at a time to find it.
                    parts, built = [], []
                    for k in range(len(good)):
                        try:
                            build_graphs(batch.select([k]), cutoff, max_neighbors=max_neighbors, n_threads=1)
                            parts.append(batch.select([k]))
                            built.append(k)
                        except ValueError as exc:
                            bad.append((good[k], " ".join(str(exc).split())[:300]))
                    graphs = build_graphs(_concat(parts), cutoff, max_neighbors=max_neighbors, n_threads=n_threads) if parts else None
            node_counts = np.zeros(n, np.int64)
            edge_counts = np.zeros(n, np.int64)
            if graphs is not None:
                positions = np.asarray([good[k] for k in built], dtype=np.int64)
                node_counts[positions] = np.diff(graphs.graph_ptr)
                edge_counts[positions] = np.diff(graphs.edge_ptr)
                local = graphs.edge_index - graphs.graph_ptr[graphs.node_graph[graphs.edge_index[0]]][None, :]
                files["numbers"].write(np.ascontiguousarray(graphs.numbers, "<i8").tobytes())
                files["edge_index"].write(np.ascontiguousarray(local.T, "<i4").tobytes())
                files["distances"].write(np.ascontiguousarray(graphs.distances, "<f4").tobytes())
            valid = np.ones(n, np.uint8)
            for k, reason in sorted(bad):
                valid[k] = 0
                report.add(n_graphs + k, units[k].label, reason)
            files["graph_ptr"].write((n_nodes + np.cumsum(node_counts)).astype("<i8").tobytes())
            files["edge_ptr"].write((n_edges + np.cumsum(edge_counts)).astype("<i8").tobytes())
            files["valid"].write(valid.tobytes())
            if target:
                files["y"].write(_target_values(units, target).astype("<f8").tobytes())
            ids.write("".join(u.label.replace("\n", " ") + "\n" for u in units))
            n_nodes += int(node_counts.sum())
            n_edges += int(edge_counts.sum())
            n_graphs += n
            bar.update(n)
        for fh in files.values():
            fh.close()
        ids.close()
        report.close()
        shapes = {
            "numbers": (n_nodes,), "edge_index": (n_edges, 2), "distances": (n_edges,), "graph_ptr": (n_graphs + 1,),
            "edge_ptr": (n_graphs + 1,), "valid": (n_graphs,), "y": (n_graphs,),
        }
        index = {
            "format": FORMAT,
            "version": VERSION,
            "n_graphs": n_graphs,
            "n_nodes": n_nodes,
            "n_edges": n_edges,
            "options": {"cutoff": cutoff, "max_neighbors": max_neighbors, "target": target, "source": str(input)},
            "arrays": {name: {"file": f"{name}.bin", "dtype": _DTYPES[name][0], "shape": list(shapes[name])} for name in files},
        }
        with open(tmp / "index.json", "w") as index_fh:
            json.dump(index, index_fh, indent=1)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        for fh in files.values():
            fh.close()
        ids.close()
        report.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    summary.n_rows, summary.n_rejected, summary.seconds = n_graphs, report.count, bar.seconds
    summary.n_written, summary.first_rejected = n_graphs, report.first
    summary.n_features = 0
    if not report.count:
        summary.error_report = None
    return summary


class GraphStore:
    """A graph store opened read-only with memory maps (nothing is read until indexed)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.exists():
            raise InputFileError(f"{self.path}: not a complete graph store (no index.json)")
        with open(index_file) as fh:
            self.index = json.load(fh)
        if self.index.get("format") != FORMAT:
            raise InputFileError(f"{self.path}: index.json is not a {FORMAT} index")
        self.arrays: Dict[str, np.ndarray] = {}
        for name, spec in self.index["arrays"].items():
            shape = tuple(spec["shape"])
            file = self.path / spec["file"]
            expected = int(np.prod(shape)) * np.dtype(spec["dtype"]).itemsize
            if file.stat().st_size != expected:
                raise InputFileError(f"{file}: {file.stat().st_size} bytes, index.json expects {expected} (store damaged?)")
            self.arrays[name] = (
                np.memmap(file, dtype=spec["dtype"], mode="r", shape=shape) if expected else np.zeros(shape, spec["dtype"])
            )

    def __len__(self) -> int:
        return int(self.index["n_graphs"])

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        i = self.index
        return f"GraphStore({self.path}, {i['n_graphs']:,} graphs, {i['n_nodes']:,} nodes, {i['n_edges']:,} edges)"

    @property
    def ids(self) -> list:
        return (self.path / "ids.txt").read_text(encoding="utf-8").splitlines()
