"""Neural network models: a descriptor MLP, a composition encoder and a CGCNN-style crystal-graph network.

Every model records the keyword arguments it was built with in ``init_args`` so that
:func:`matxfer.nn.save_model` can write them as JSON beside the weights, and
:func:`matxfer.nn.load_model` can rebuild the module without pickling code.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "LatentMLP",
    "CompositionEncoder",
    "CGCNN",
    "GaussianExpansion",
    "CGConv",
    "MODEL_REGISTRY",
]

ACTIVATIONS = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None



def target_scaling(y: Any, n_out: int) -> Tuple[Tensor, Tensor]:
    """Per-column mean and std (float64) of training targets [n] or [n, n_out], NaN = missing; a
    column with no value gets mean 0 and std 1, a (near-)constant one std 1. The output scaling that
    every matxfer network's ``fit_target_scaling`` stores."""
    y = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[1] != n_out:
        raise ValueError(f"expected targets with {n_out} column(s), got {tuple(y.shape)}")
    mean = torch.nan_to_num(torch.nanmean(y, dim=0), nan=0.0)
    std = torch.sqrt(torch.nan_to_num(torch.nanmean((y - mean) ** 2, dim=0), nan=1.0))
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))

class MLP(nn.Module):
    """Multilayer perceptron over descriptor vectors that carries its own input scaling.

    The standardisation (``x' = (x - mean) / std``) lives in buffers, so it is saved with the
    weights and a transferred model sees target descriptors on the source scale.
    Descriptor columns that are NaN (e.g. a property missing for an element) are set to the
    column mean, i.e. to 0 after scaling.

    Parameters
    ----------
    n_in : number of descriptor columns.
    hidden : widths of the hidden layers; ``layers[i]`` is ``Linear -> activation -> dropout``.
    n_out : number of outputs (one per task for multi-task use).
    activation : one of ``ACTIVATIONS``.
    dropout : dropout probability after each hidden layer.
    layer_norm : apply LayerNorm after each hidden Linear.
    n_extra : extra inputs appended *after* scaling (a latent task embedding, a source prediction);
        they are not standardised by the stored scaling.
    """

    #: Scaled inputs may exceed the training range by this fraction of the range (see ``scale``).
    INPUT_MARGIN = 0.1
    #: weight whose trailing input columns see the ``n_extra`` inputs (used by Delta)
    extra_input_weight = "layers.0.0.weight"

    # Buffers registered in ``__init__`` (declared for type checkers only).
    x_mean: Tensor
    x_std: Tensor
    z_lo: Tensor
    z_hi: Tensor
    y_mean: Tensor
    y_std: Tensor

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int] = (512, 256, 128),
        n_out: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
        layer_norm: bool = False,
        n_extra: int = 0,
    ) -> None:
        super().__init__()
        if n_in < 1 or n_out < 1 or any(h < 1 for h in hidden):
            raise ValueError("n_in, n_out and every hidden width must be >= 1")
        self.init_args: Dict[str, Any] = dict(
            n_in=int(n_in),
            hidden=[int(h) for h in hidden],
            n_out=int(n_out),
            activation=activation,
            dropout=float(dropout),
            layer_norm=bool(layer_norm),
            n_extra=int(n_extra),
        )
        self.n_in, self.n_out, self.n_extra = int(n_in), int(n_out), int(n_extra)
        self.register_buffer("x_mean", torch.zeros(n_in))
        self.register_buffer("x_std", torch.ones(n_in))
        # Scaled descriptors are clipped to the range seen by ``fit_scaling`` (widened by
        # INPUT_MARGIN of that range); unbounded until it is called.
        self.register_buffer("z_lo", torch.full((n_in,), -math.inf))
        self.register_buffer("z_hi", torch.full((n_in,), math.inf))
        # Output scaling: predictions are ``head(h) * y_std + y_mean`` so the head works in unit scale.
        self.register_buffer("y_mean", torch.zeros(n_out))
        self.register_buffer("y_std", torch.ones(n_out))
        widths = [n_in + n_extra, *[int(h) for h in hidden]]
        self.layers = nn.ModuleList()
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            block: List[nn.Module] = [nn.Linear(w_in, w_out)]
            if layer_norm:
                block.append(nn.LayerNorm(w_out))
            block.append(_activation(activation))
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            self.layers.append(nn.Sequential(*block))
        self.head = nn.Linear(widths[-1], n_out)
        self.reset_parameters()

    @property
    def n_hidden_layers(self) -> int:
        return len(self.layers)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()

    @torch.no_grad()
    def fit_scaling(self, x: np.ndarray | Tensor) -> MLP:
        """Set the stored input scaling from training descriptors (NaNs ignored); returns self."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"expected descriptors of shape (n, {self.n_in}), got {tuple(x.shape)}")
        mean = torch.nanmean(x, dim=0)
        mean = torch.where(torch.isnan(mean), torch.zeros_like(mean), mean)
        centred = torch.where(torch.isnan(x), torch.zeros_like(x), x - mean)
        counts = (~torch.isnan(x)).sum(0).clamp(min=1)
        std = (centred.pow(2).sum(0) / counts).sqrt()
        # Constant columns (e.g. an element that never occurs) would divide by zero.
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.x_mean.copy_(mean.to(self.x_mean.dtype))
        self.x_std.copy_(std.to(self.x_std.dtype))
        # The range the network is trained on, computed exactly as ``scale`` will compute it.
        z = self.scale(x.to(self.x_mean.dtype), clip=False)
        observed = ~torch.isnan(x)
        lo = torch.where(observed, z, torch.full_like(z, math.inf)).amin(0)
        hi = torch.where(observed, z, torch.full_like(z, -math.inf)).amax(0)
        lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))  # all-NaN columns scale to 0
        hi = torch.where(torch.isfinite(hi), hi, torch.zeros_like(hi))
        margin = self.INPUT_MARGIN * (hi - lo)
        self.z_lo.copy_(lo - margin)
        self.z_hi.copy_(hi + margin)
        return self

    @torch.no_grad()
    def fit_target_scaling(self, y: np.ndarray | Tensor) -> MLP:
        """Set the output scaling from training targets [n] or [n, n_out] (NaN = missing); returns self."""
        mean, std = target_scaling(y, self.n_out)
        self.y_mean.copy_(mean)
        self.y_std.copy_(std)
        return self

    def scale(self, x: Tensor, clip: bool = True) -> Tensor:
        """Standardised descriptors; missing (NaN) values become 0 (the training mean), and each
        column is clipped to its training range widened by ``INPUT_MARGIN`` of that range, so a
        compound far outside the training data (e.g. a descriptor millions of standard deviations
        out, where a column is nearly constant in training) cannot drive the network into wild
        extrapolation. Training rows are inside the range, so clipping never changes them."""
        z = torch.nan_to_num((x - self.x_mean) / self.x_std, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.clamp(z, self.z_lo, self.z_hi) if clip else z

    def _trunk_input(self, x: Tensor, extra: Optional[Tensor]) -> Tensor:
        z = self.scale(x)
        if self.n_extra:
            if extra is None or extra.shape[-1] != self.n_extra:
                raise ValueError(f"this MLP expects {self.n_extra} extra input column(s)")
            z = torch.cat([z, extra.to(z.dtype)], dim=-1)
        return z

    def hidden_states(self, x: Tensor, extra: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Activations after each hidden layer (the frozen-feature descriptors)."""
        h = self._trunk_input(x, extra)
        states = []
        for layer in self.layers:
            h = layer(h)
            states.append(h)
        return tuple(states)

    def embed(self, x: Tensor, extra: Optional[Tensor] = None) -> Tensor:
        """Activation of the last hidden layer."""
        return self.hidden_states(x, extra)[-1]

    def forward(self, x: Tensor, extra: Optional[Tensor] = None) -> Tensor:
        return self.head(self.embed(x, extra)) * self.y_std + self.y_mean

    def extra_repr(self) -> str:
        a = self.init_args
        return (
            f"n_in={a['n_in']}, hidden={a['hidden']}, n_out={a['n_out']}, activation={a['activation']!r}, "
            f"dropout={a['dropout']}, n_extra={a['n_extra']}, scaled={bool((self.x_std != 1).any())}"
        )


class CompositionEncoder(nn.Module):
    """Composition descriptor -> embedding (the CroMEL composition-side encoder), with a property head.

    ``encode`` gives the embedding, ``forward`` the property prediction from it. The MLP
    underneath stores the descriptor scaling.
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int] = (512, 256),
        embedding_dim: int = 128,
        n_out: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.init_args: Dict[str, Any] = dict(
            n_in=int(n_in),
            hidden=[int(h) for h in hidden],
            embedding_dim=int(embedding_dim),
            n_out=int(n_out),
            activation=activation,
            dropout=float(dropout),
        )
        self.encoder = MLP(n_in, hidden, n_out=embedding_dim, activation=activation, dropout=dropout)
        self.head = nn.Sequential(_activation(activation), nn.Linear(embedding_dim, n_out))
        self.embedding_dim = int(embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        cast(nn.Linear, self.head[1]).reset_parameters()

    def fit_scaling(self, x: np.ndarray | Tensor) -> CompositionEncoder:
        self.encoder.fit_scaling(x)
        return self

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encode(x))

    def extra_repr(self) -> str:
        a = self.init_args
        return f"n_in={a['n_in']}, hidden={a['hidden']}, embedding_dim={a['embedding_dim']}, n_out={a['n_out']}"


class LatentMLP(nn.Module):
    """MLP with an explicit latent variable: a learned embedding per task (or fidelity) is appended
    to the scaled descriptors (Hutchinson et al.'s "latent variable" transfer).

    ``forward(x, task)`` takes descriptors [n, n_in] and integer task ids [n].
    """

    def __init__(
        self,
        n_in: int,
        n_tasks: int = 2,
        latent_dim: int = 4,
        hidden: Sequence[int] = (512, 256, 128),
        activation: str = "silu",
        dropout: float = 0.0,
        n_out: int = 1,
    ) -> None:
        super().__init__()
        self.init_args: Dict[str, Any] = dict(
            n_in=int(n_in),
            n_tasks=int(n_tasks),
            latent_dim=int(latent_dim),
            hidden=[int(h) for h in hidden],
            activation=activation,
            dropout=float(dropout),
        )
        if n_out != 1:  # recorded only when used, so files of single-output models stay as they were
            self.init_args["n_out"] = int(n_out)
        self.mlp = MLP(n_in, hidden, n_out=n_out, activation=activation, dropout=dropout, n_extra=latent_dim)
        self.task_embedding = nn.Embedding(n_tasks, latent_dim)
        self.reset_parameters()

    @property
    def y_std(self) -> Tensor:
        return self.mlp.y_std

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()
        nn.init.normal_(self.task_embedding.weight, std=0.1)

    @torch.no_grad()
    def load_source_mlp(self, source: MLP) -> LatentMLP:
        """Initialise from a single-task source MLP of the same widths: its first-layer weights go to the
        descriptor columns and the latent columns start at zero, so every task starts as the source model.
        With more outputs than the source, output 0 starts as the source output and the others keep
        their fresh initialisation."""
        own = self.mlp.state_dict()
        for key, value in source.state_dict().items():
            if key == "layers.0.0.weight":
                own[key].zero_()
                own[key][:, : value.shape[1]] = value
            elif own[key].shape == value.shape:
                own[key].copy_(value)
            else:  # head / output scaling of a wider model: first output from the source
                own[key][: value.shape[0]] = value
        self.mlp.load_state_dict(own)
        return self

    def forward(self, x: Tensor, task: Tensor) -> Tensor:
        return self.mlp(x, self.task_embedding(task.long()))

    def extra_repr(self) -> str:
        a = self.init_args
        return f"n_in={a['n_in']}, n_tasks={a['n_tasks']}, latent_dim={a['latent_dim']}, hidden={a['hidden']}"


class GaussianExpansion(nn.Module):
    """Expand interatomic distances (angstrom) on Gaussians ``exp(-(d - mu_k)^2 / width^2)``."""

    centres: Tensor  # buffer registered in ``__init__``

    def __init__(self, start: float = 0.0, stop: float = 8.0, n_gaussians: int = 40) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(start, stop, n_gaussians))
        self.width = (stop - start) / max(n_gaussians - 1, 1)

    def forward(self, distances: Tensor) -> Tensor:
        return torch.exp(-((distances[:, None] - self.centres) ** 2) / self.width**2)

    def extra_repr(self) -> str:
        c = self.centres
        return f"start={float(c[0]):g}, stop={float(c[-1]):g}, n_gaussians={c.numel()}"


class AngleUpdate(nn.Module):
    """Three-body update of the edge features from bond angles (ALIGNN / M3GNet style, in CGCNN's
    gated form). For each triplet of the core's graphs (edges ``i->j`` and ``i->k`` of the same centre,
    both shorter than the graph's ``three_body_cutoff``) with ``z = [e_ij, e_ik, a(cos jik), h_k]``:
    ``e_ij <- e_ij + norm(sum_k sigmoid(z W_f) * softplus(z W_s))``, where ``a`` expands the cosine
    on ``n_angle`` Gaussians evenly spaced on [-1, 1] (width = spacing). The angle is read from the
    core's ``triplet_cos``; nothing about geometry is recomputed in torch.

    The gain of the last normalization starts at zero (the zero-gain residual initialisation of
    Goyal et al. 2017), so an untrained network with angles computes exactly what the plain CGCNN
    computes and opens the angle path only as far as training finds it useful; with the usual unit
    gain the first updates added unit-scale noise to every edge feature, and one of two carbon_24
    seeds stayed near the mean predictor (benches/RESULTS.md, "Bond angles in CGCNN").
    """

    centres: Tensor

    def __init__(self, node_dim: int, edge_dim: int, n_angle: int, norm: str = "batch") -> None:
        super().__init__()
        if int(n_angle) < 2:
            raise ValueError(f"AngleUpdate: n_angle must be >= 2, got {n_angle!r}")
        self.register_buffer("centres", torch.linspace(-1.0, 1.0, int(n_angle)))
        self.width = 2.0 / (int(n_angle) - 1)
        self.linear = nn.Linear(2 * edge_dim + int(n_angle) + node_dim, 2 * edge_dim)
        self.norm_messages: Union[nn.BatchNorm1d, nn.LayerNorm]
        self.norm_edges: Union[nn.BatchNorm1d, nn.LayerNorm]
        if norm == "batch":
            self.norm_messages, self.norm_edges = nn.BatchNorm1d(2 * edge_dim), nn.BatchNorm1d(edge_dim)
        else:
            self.norm_messages, self.norm_edges = nn.LayerNorm(2 * edge_dim), nn.LayerNorm(edge_dim)
        self._zero_gain()

    def _zero_gain(self) -> None:
        with torch.no_grad():
            self.norm_edges.weight.zero_()

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.norm_messages.reset_parameters()
        self.norm_edges.reset_parameters()
        self._zero_gain()

    def forward(self, h: Tensor, e: Tensor, edge_index: Tensor, triplet_index: Tensor, triplet_cos: Tensor) -> Tensor:
        first, second = triplet_index[0], triplet_index[1]
        angles = torch.exp(-(((triplet_cos.to(e.dtype)[:, None] - self.centres) / self.width) ** 2))
        z = torch.cat([e[first], e[second], angles, h[edge_index[1, second]].to(e.dtype)], dim=-1)
        gate, core = self.norm_messages(self.linear(z)).chunk(2, dim=-1)
        messages = torch.sigmoid(gate) * nn.functional.softplus(core)
        aggregated = torch.zeros_like(e).index_add_(0, first, messages)
        return e + self.norm_edges(aggregated)


class CGConv(nn.Module):
    """CGCNN convolution (Xie & Grossman 2018): for edge i<-j with z = [h_i, h_j, e_ij],
    ``h_i <- h_i + softplus(BN(sum_j sigmoid(z W_f) * softplus(z W_s)))``.

    Aggregation is a single ``index_add_`` over the edge list, so a batch of thousands of
    graphs is one kernel launch per layer. ``norm``: ``"batch"`` (BatchNorm, as in the paper) or
    ``"layer"`` (LayerNorm; see :class:`CGCNN`).
    """

    def __init__(self, node_dim: int, edge_dim: int, norm: str = "batch", n_angle: Optional[int] = None) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * node_dim + edge_dim, 2 * node_dim)
        # registered only for a network with angles, so other state dicts keep their keys
        self.angle: Optional[AngleUpdate] = None if n_angle is None else AngleUpdate(node_dim, edge_dim, n_angle, norm)
        self.norm_edges: Union[nn.BatchNorm1d, nn.LayerNorm]
        self.norm_nodes: Union[nn.BatchNorm1d, nn.LayerNorm]
        if norm == "batch":
            self.norm_edges, self.norm_nodes = nn.BatchNorm1d(2 * node_dim), nn.BatchNorm1d(node_dim)
        elif norm == "layer":
            self.norm_edges, self.norm_nodes = nn.LayerNorm(2 * node_dim), nn.LayerNorm(node_dim)
        else:
            raise ValueError(f"CGConv: norm must be 'batch' or 'layer', got {norm!r}")
        self.node_dim = node_dim

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.norm_edges.reset_parameters()
        self.norm_nodes.reset_parameters()
        if self.angle is not None:
            self.angle.reset_parameters()

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        z = torch.cat([h[centre], h[neighbour], edge_attr], dim=-1)
        gate, core = self.norm_edges(self.linear(z)).chunk(2, dim=-1)
        messages = torch.sigmoid(gate) * nn.functional.softplus(core)
        aggregated = torch.zeros_like(h).index_add_(0, centre, messages.to(h.dtype))
        return nn.functional.softplus(h + self.norm_nodes(aggregated))


class CGCNN(nn.Module):
    """Crystal-graph convolutional network over matxfer's batched graphs.

    Inputs (all tensors, as produced by matxfer's graph builder):
    ``atomic_numbers`` int64 [N]; ``edge_index`` int64 [2, E] (row 0 = centre atom, row 1 = neighbour,
    both global node indices); ``distances`` float [E] in angstrom; ``node_graph`` int64 [N]
    (graph index of each node); ``n_graphs``. Graph embeddings are the mean of node states.

    ``norm="batch"`` (the paper's BatchNorm, the default) normalizes each convolution by batch
    statistics in training and running statistics in evaluation; ``norm="layer"`` (LayerNorm per
    edge and per atom) has no batch statistics. Measured once, on carbon_24 (one element: the first
    convolution's inputs differ only through the distances, batch variances ~1e-3) with the library
    recipe (48-wide, 3 convolutions, 3,668 rows, batch 64, lr 3e-3, 15 epochs): BatchNorm's
    validation loss was 16-219 standardized units against 0.2-0.4 in training and its hold-out MAE
    0.71 eV/atom (mean predictor 0.117); LayerNorm reached 0.062 / 0.067 (seeds 0 / 1) after a
    plateau of up to 10 epochs. A smaller network on 800 rows showed the opposite (BatchNorm 0.074,
    LayerNorm 0.112 after 8 epochs), so this is not a rule: check the hold-out.

    ``angle_cutoff`` (angstrom, at most ``cutoff``; default None = no angles): before each convolution
    an :class:`AngleUpdate` updates the edge features from the bond angles between edges of the same
    centre that are both shorter than ``angle_cutoff``, expanded on ``n_angle`` Gaussians. The angles
    are the core's ``triplet_index`` / ``triplet_cos`` (``build_graphs(...,
    three_body_cutoff=model.angle_cutoff)``; :meth:`GraphRegressor.graphs` builds them), passed as the
    seventh and eighth inputs; a network with angles refuses inputs without them.
    """

    def __init__(
        self,
        node_dim: int = 64,
        n_conv: int = 3,
        n_gaussians: int = 40,
        cutoff: float = 8.0,
        hidden: Sequence[int] = (128,),
        n_out: int = 1,
        max_z: int = 100,
        norm: str = "batch",
        angle_cutoff: Optional[float] = None,
        n_angle: int = 8,
    ) -> None:
        super().__init__()
        if norm not in ("batch", "layer"):
            raise ValueError(f"CGCNN: norm must be 'batch' or 'layer', got {norm!r}")
        if angle_cutoff is not None:
            if not (isinstance(angle_cutoff, (int, float)) and math.isfinite(angle_cutoff) and 0 < angle_cutoff <= cutoff):
                raise ValueError(f"CGCNN: angle_cutoff must be a number of angstrom in (0, cutoff={cutoff}], got {angle_cutoff!r}")
            if isinstance(n_angle, bool) or not isinstance(n_angle, int) or n_angle < 2:
                raise ValueError(f"CGCNN: n_angle must be an integer >= 2, got {n_angle!r}")
        self.init_args: Dict[str, Any] = dict(
            node_dim=int(node_dim),
            n_conv=int(n_conv),
            n_gaussians=int(n_gaussians),
            cutoff=float(cutoff),
            hidden=[int(h) for h in hidden],
            n_out=int(n_out),
            max_z=int(max_z),
        )
        if norm != "batch":  # recorded only when not the default, so earlier cards and files keep their bytes
            self.init_args["norm"] = norm
        if angle_cutoff is not None:  # the same: recorded only when used
            self.init_args["angle_cutoff"] = float(angle_cutoff)
            self.init_args["n_angle"] = int(n_angle)
        self.embedding = nn.Embedding(max_z + 1, node_dim)
        self.expansion = GaussianExpansion(0.0, cutoff, n_gaussians)
        # with angles, each convolution holds its angle update, so FineTune(freeze_first=k) freezes both
        self.convs = nn.ModuleList(CGConv(node_dim, n_gaussians, norm, None if angle_cutoff is None else int(n_angle))
                                   for _ in range(n_conv))
        widths = [node_dim, *[int(h) for h in hidden]]
        blocks = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(w_in, w_out), nn.Softplus()]
        self.readout = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], n_out)
        self.embedding_dim = widths[-1]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for conv in self.convs:
            cast(CGConv, conv).reset_parameters()
        for module in self.readout:
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        self.head.reset_parameters()

    def graph_rbf(self) -> Dict[str, Any]:
        """The ``rbf`` argument of :func:`matxfer.graphs.build_graphs` that builds exactly this
        network's Gaussian expansion in the core (``{"start": 0, "stop": cutoff, "n": n_gaussians}``)."""
        return {"start": 0.0, "stop": float(self.init_args["cutoff"]), "n": int(self.init_args["n_gaussians"])}

    @property
    def angle_cutoff(self) -> Optional[float]:
        """The bond-angle radius (angstrom) of a network with angles, else None: the
        ``three_body_cutoff`` its graphs must be built with."""
        return self.init_args.get("angle_cutoff")

    def _edge_features(self, distances: Tensor, rbf: Optional[Tensor], dtype: torch.dtype) -> Tensor:
        if rbf is None:
            return self.expansion(distances.to(dtype))
        n = self.init_args["n_gaussians"]
        if rbf.ndim != 2 or rbf.shape[0] != distances.shape[0] or rbf.shape[1] != n:
            raise ValueError(f"rbf must have shape ({distances.shape[0]}, {n}) (one row of {n} Gaussians per edge, "
                             f"built with rbf=model.graph_rbf()), got {tuple(rbf.shape)}")
        return rbf.to(dtype)

    def hidden_states(
        self, atomic_numbers: Tensor, edge_index: Tensor, distances: Tensor, node_graph: Tensor, n_graphs: int,
        rbf: Optional[Tensor] = None, triplet_index: Optional[Tensor] = None, triplet_cos: Optional[Tensor] = None,
    ) -> Tuple[Tensor, ...]:
        """Per-graph states: the mean of the atom states after the convolutions, then the output of each
        readout layer (the last one is :meth:`encode`). These are the frozen features of a graph source.
        ``triplet_index`` [2, T] / ``triplet_cos`` [T]: the bond-angle triplets of the batch (edge indices
        into ``edge_index``), needed by a network with ``angle_cutoff`` and ignored by one without."""
        if int(atomic_numbers.max()) > self.init_args["max_z"]:
            raise ValueError(f"atomic number above max_z={self.init_args['max_z']}")
        cut = self.angle_cutoff
        if cut is not None:
            if triplet_index is None or triplet_cos is None:
                raise ValueError(f"this CGCNN uses bond angles (angle_cutoff={cut:g}) but its inputs carry no triplets: "
                                 f"build the graphs with three_body_cutoff={cut:g} (GraphRegressor.graphs does)")
            if triplet_index.ndim != 2 or triplet_index.shape[0] != 2 or triplet_cos.shape != (triplet_index.shape[1],):
                raise ValueError(f"triplet_index must have shape (2, T) and triplet_cos (T,), got "
                                 f"{tuple(triplet_index.shape)} and {tuple(triplet_cos.shape)}")
        h = self.embedding(atomic_numbers)
        e = self._edge_features(distances, rbf, h.dtype)
        for conv in self.convs:
            angle = cast(CGConv, conv).angle
            if angle is not None:
                e = angle(h, e, edge_index, cast(Tensor, triplet_index), cast(Tensor, triplet_cos))
            h = conv(h, edge_index, e)
        pooled = torch.zeros(n_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, node_graph, h)
        counts = torch.bincount(node_graph, minlength=n_graphs).clamp(min=1).to(h.dtype)
        states = [pooled / counts[:, None]]
        x = states[0]
        for module in self.readout:
            x = module(x)
            if not isinstance(module, nn.Linear):
                states.append(x)
        return tuple(states)

    @property
    def n_hidden_layers(self) -> int:
        """Number of per-graph states :meth:`hidden_states` returns."""
        return 1 + sum(isinstance(m, nn.Linear) for m in self.readout)

    def encode(
        self, atomic_numbers: Tensor, edge_index: Tensor, distances: Tensor, node_graph: Tensor, n_graphs: int,
        rbf: Optional[Tensor] = None, triplet_index: Optional[Tensor] = None, triplet_cos: Optional[Tensor] = None,
    ) -> Tensor:
        """Graph embeddings [n_graphs, embedding_dim]. ``rbf`` [E, n_gaussians]: the core's Gaussian
        expansion of ``distances`` (``build_graphs(..., rbf=model.graph_rbf())``); when given it is used
        as is and the network computes no expansion of its own. Triplets: see :meth:`hidden_states`."""
        return self.hidden_states(atomic_numbers, edge_index, distances, node_graph, n_graphs, rbf,
                                  triplet_index, triplet_cos)[-1]

    def forward(
        self, atomic_numbers: Tensor, edge_index: Tensor, distances: Tensor, node_graph: Tensor, n_graphs: int,
        rbf: Optional[Tensor] = None, triplet_index: Optional[Tensor] = None, triplet_cos: Optional[Tensor] = None,
    ) -> Tensor:
        return self.head(self.encode(atomic_numbers, edge_index, distances, node_graph, n_graphs, rbf,
                                     triplet_index, triplet_cos))

    def extra_repr(self) -> str:
        a = self.init_args
        angles = "" if "angle_cutoff" not in a else f", angle_cutoff={a['angle_cutoff']}, n_angle={a['n_angle']}"
        return f"node_dim={a['node_dim']}, n_conv={a['n_conv']}, cutoff={a['cutoff']}, n_out={a['n_out']}{angles}"


MODEL_REGISTRY: Dict[str, type] = {cls.__name__: cls for cls in (MLP, LatentMLP, CompositionEncoder, CGCNN)}

