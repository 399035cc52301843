"""A crystal-graph network with its output scaling and graph settings: the graph source / target
network of the transfer strategies (:mod:`matxfer.transfer`).

:class:`GraphRegressor` wraps a :class:`CGCNN` with

* output scaling buffers ``y_mean`` / ``y_std`` (predictions are ``net(g) * y_std + y_mean``, so the
  network works in unit scale and the trainer divides residuals by ``y_std``), and
* the settings its crystal graphs are built with (``graph_options``: cutoff, max_neighbors,
  few_neighbors, min_distance), so structures given to a strategy are turned into exactly the graphs
  the source was trained on. The Gaussian expansion of the distances is built by the core
  (``build_graphs(..., rbf=...)``) with the network's centres and width, not recomputed in torch.

Everything is in ``init_args`` (plain JSON), so :func:`matxfer.nn.save_model` and
:func:`matxfer.transfer.save_strategy` write it without pickling.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .data import GraphData
from .models import CGCNN, MODEL_REGISTRY, target_scaling

__all__ = ["GraphRegressor", "DEFAULT_GRAPH_OPTIONS", "as_graph_model"]

#: CGCNN-style graphs (Xie & Grossman 2018): 8 angstrom, the 12 nearest neighbours.
DEFAULT_GRAPH_OPTIONS: Dict[str, Any] = {"cutoff": 8.0, "max_neighbors": 12, "few_neighbors": "keep", "min_distance": 0.1}


def _check_options(options: Dict[str, Any]) -> Dict[str, Any]:
    unknown = set(options) - set(DEFAULT_GRAPH_OPTIONS)
    if unknown:
        raise ValueError(f"unknown graph option(s) {sorted(unknown)}; known: {sorted(DEFAULT_GRAPH_OPTIONS)}")
    out = {**DEFAULT_GRAPH_OPTIONS, **options}
    cutoff = out["cutoff"]
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"graph cutoff must be a positive number of angstrom, got {cutoff!r}")
    out["cutoff"] = float(cutoff)
    m = out["max_neighbors"]
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ValueError(f"max_neighbors must be a positive integer or None, got {m!r}")
    return out


class GraphRegressor(nn.Module):
    """CGCNN + output scaling + graph settings.

    Parameters
    ----------
    graph : keyword arguments of :class:`CGCNN` (``n_out`` is taken from ``n_out`` here).
    n_out : number of outputs.
    graph_options : how crystal graphs are built for this network (see ``DEFAULT_GRAPH_OPTIONS``).
    """

    y_mean: Tensor
    y_std: Tensor

    def __init__(self, graph: Optional[Dict[str, Any]] = None, n_out: int = 1,
                 graph_options: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if int(n_out) < 1:
            raise ValueError("n_out must be >= 1")
        graph = {k: v for k, v in (graph or {}).items() if k != "n_out"}
        self.net = CGCNN(**graph, n_out=int(n_out))
        args = {k: v for k, v in self.net.init_args.items() if k != "n_out"}
        self.init_args: Dict[str, Any] = dict(graph=args, n_out=int(n_out), graph_options=_check_options(graph_options or {}))
        self.n_out = int(n_out)
        self.register_buffer("y_mean", torch.zeros(n_out))
        self.register_buffer("y_std", torch.ones(n_out))

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_cgcnn(cls, net: CGCNN, y_mean: Any = 0.0, y_std: Any = 1.0,
                   graph_options: Optional[Dict[str, Any]] = None) -> GraphRegressor:
        """Wrap a trained CGCNN (a copy of its weights) whose output is ``(y - y_mean) / y_std``."""
        args = dict(net.init_args)
        model = cls(args, n_out=args["n_out"], graph_options=graph_options)
        model.net.load_state_dict(net.state_dict())
        model.y_mean.copy_(torch.as_tensor(np.broadcast_to(np.asarray(y_mean, np.float64), (model.n_out,)).copy()))
        model.y_std.copy_(torch.as_tensor(np.broadcast_to(np.asarray(y_std, np.float64), (model.n_out,)).copy()))
        return model.train(net.training)

    @torch.no_grad()
    def fit_target_scaling(self, y: Any) -> GraphRegressor:
        """Output scaling from training targets [n] or [n, n_out] (NaN = missing); returns self."""
        mean, std = target_scaling(y, self.n_out)
        self.y_mean.copy_(mean)
        self.y_std.copy_(std)
        return self

    def reset_parameters(self) -> None:
        self.net.reset_parameters()

    # -- graphs ----------------------------------------------------------------------------------
    @property
    def graph_options(self) -> Dict[str, Any]:
        return dict(self.init_args["graph_options"])

    def graphs(self, structures: Any, y: Any = None, weight: Any = None, n_threads: Optional[int] = None) -> GraphData:
        """Crystal graphs of ``structures`` (a StructureBatch, a structure file, pymatgen / ASE / dict
        structures) built with this model's settings, the Gaussian expansion included (from the core), and
        the bond-angle triplets when the network uses angles."""
        from ..graphs import build_graphs

        o = self.init_args["graph_options"]
        g = build_graphs(structures, o["cutoff"], max_neighbors=o["max_neighbors"], few_neighbors=o["few_neighbors"],
                         min_distance=o["min_distance"], rbf=self.net.graph_rbf(), rbf_dtype="float32",
                         three_body_cutoff=self.net.angle_cutoff, n_threads=n_threads)
        return GraphData.from_graphs(g, y=y, weight=weight)

    # -- network ---------------------------------------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        return self.net.embedding_dim

    @property
    def head(self) -> nn.Linear:
        return self.net.head

    @property
    def layers(self) -> List[nn.Module]:
        """The trainable blocks below the head, from the input: atom embedding, each convolution,
        each readout layer (``FineTune(freeze_first=k)`` freezes the first k)."""
        readout = [m for m in self.net.readout if isinstance(m, nn.Linear)]
        return [self.net.embedding, *self.net.convs, *readout]

    @property
    def n_hidden_layers(self) -> int:
        return len(self.layers)

    def hidden_states(self, *inputs: Any) -> Tuple[Tensor, ...]:
        """Per-graph states (pooled atom states, then each readout layer); see :meth:`CGCNN.hidden_states`."""
        return self.net.hidden_states(*inputs)

    def encode(self, *inputs: Any) -> Tensor:
        return self.net.encode(*inputs)

    def forward(self, *inputs: Any) -> Tensor:
        return self.net(*inputs) * self.y_std + self.y_mean

    def extra_repr(self) -> str:
        return f"n_out={self.n_out}, graph_options={self.init_args['graph_options']}"


def as_graph_model(model: Any) -> Optional[GraphRegressor]:
    """A :class:`GraphRegressor` for a graph source (a GraphRegressor, a CGCNN, or a structure library
    model, whose card gives the output scaling and graph settings); None for anything else."""
    if isinstance(model, GraphRegressor):
        return model
    if isinstance(model, CGCNN):
        return GraphRegressor.from_cgcnn(model, graph_options={"cutoff": model.init_args["cutoff"]})
    from ..library.structure import StructureLibraryModel

    if isinstance(model, StructureLibraryModel):
        d = model.card["descriptor"]
        options = {k: d[k] for k in DEFAULT_GRAPH_OPTIONS}
        out = GraphRegressor.from_cgcnn(model.network, model.y_mean, model.y_std, graph_options=options)
        out.task = model.task  # type: ignore[assignment]
        return out
    return None


MODEL_REGISTRY["GraphRegressor"] = GraphRegressor
