"""An attention composition encoder in the Roost / CrabNet style.

A formula is a set of elements, each carrying an element embedding (a fixed table embedded in the
Rust core, e.g. mat2vec or matscholar, with a learned projection) plus an encoding of its fractional
amount; a few layers of masked self-attention over the set let every element see the others, and a
fraction-weighted attention pooling (Roost) gives one vector per formula. No hand-crafted
descriptor is involved: the only inputs are which elements occur and in which proportions.

Inputs are plain 2-D arrays, so the encoder drops into every transfer strategy like the MLP:
``X[:, :118]`` holds the fractional composition (``matxfer.featurize(formulas, preset="fraction")``,
column z-1 = element z), and optional trailing columns are conditioning inputs (temperature,
doping, ...) that are standardised and joined to the pooled vector. :func:`attention_inputs`
builds such arrays. Sets are padded per batch to the largest element count in that batch and
padded positions are masked out of attention and pooling.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .models import MODEL_REGISTRY, _activation, target_scaling

__all__ = ["AttentionEncoder", "N_ELEMENTS", "attention_inputs"]

#: columns of the fractional composition (elements Z = 1..118)
N_ELEMENTS = 118


def attention_inputs(formulas: Sequence[Any], conditions: Optional[np.ndarray] = None) -> np.ndarray:
    """Encoder inputs for ``formulas``: the fractional composition [n, 118] (core preset "fraction"),
    followed by the conditioning columns ``conditions`` [n, k] (e.g. temperature in K) when given.

    A formula the core cannot parse raises :class:`matxfer.FormulaError` naming its row."""
    from ..featurize import featurize

    X = np.asarray(featurize(list(formulas), preset="fraction").values, dtype=np.float64)
    if conditions is None:
        return X
    c = np.asarray(conditions, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    if c.ndim != 2 or c.shape[0] != len(X):
        raise ValueError(f"conditions must have shape ({len(X)},) or ({len(X)}, k), got {c.shape}")
    bad = np.argwhere(~np.isfinite(c))
    if bad.size:
        raise ValueError(f"condition row {int(bad[0, 0])}, column {int(bad[0, 1])} is {c[tuple(bad[0])]}")
    return np.concatenate([X, c], axis=1)


def _fraction_encoding(frac: Tensor, dim: int) -> Tensor:
    """Sinusoidal encoding of fractional amounts on a linear and a log scale (CrabNet's two
    encoders, here computed for the continuous value): [..., dim]."""
    n_freq = dim // 4
    k = torch.arange(n_freq, dtype=frac.dtype, device=frac.device) / max(n_freq - 1, 1)
    lin = frac[..., None] * (2 * math.pi * 500.0**k)  # periods from 1 down to 1/500 of a fraction
    logf = torch.log(frac.clamp(min=1e-6))[..., None] * (0.05 * 100.0**k)  # log-fraction, periods ~0.6 ... 125
    out = torch.cat([torch.sin(lin), torch.cos(lin), torch.sin(logf), torch.cos(logf)], dim=-1)
    if out.shape[-1] < dim:
        out = torch.cat([out, frac[..., None].expand(*frac.shape, dim - out.shape[-1])], dim=-1)
    return out


class _SetAttention(nn.Module):
    """Pre-norm transformer block over a padded set: masked multi-head self-attention + feed-forward."""

    def __init__(self, dim: int, n_heads: int, ff_dim: int, dropout: float, activation: str) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"d_model={dim} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), _activation(activation), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        b, k, d = h.shape
        q, kk, v = self.qkv(self.norm1(h)).view(b, k, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = (q @ kk.transpose(-1, -2)) / math.sqrt(d // self.n_heads)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        att = torch.softmax(scores, dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, k, d)
        h = h + self.drop(self.out(a))
        h = h + self.drop(self.ff(self.norm2(h)))
        return h * mask[..., None]


class _SetEncoder(nn.Module):
    """Fractional composition [n, 118] -> pooled formula vector [n, d_model]."""

    table: Tensor  # fixed element embedding [118, k], a buffer

    def __init__(self, table: np.ndarray, d_model: int, n_layers: int, n_heads: int, ff_dim: int, dropout: float,
                 activation: str) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(np.nan_to_num(np.asarray(table, dtype=np.float32))))
        self.embed = nn.Linear(self.table.shape[1], d_model)
        self.fraction = nn.Linear(d_model, d_model)
        self.blocks = nn.ModuleList(_SetAttention(d_model, n_heads, ff_dim, dropout, activation)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.gate = nn.Sequential(nn.Linear(d_model, d_model), _activation(activation), nn.Linear(d_model, 1))
        self.value = nn.Linear(d_model, d_model)
        self.d_model = d_model

    def elements(self, frac: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(element index [n, k], fraction [n, k], mask [n, k]) with k = the largest element count
        in the batch; elements are ordered by decreasing fraction, ties by increasing Z."""
        frac = torch.nan_to_num(frac, nan=0.0).clamp(min=0.0)
        counts = (frac > 0).sum(1)
        if bool((counts == 0).any()):
            row = int(torch.nonzero(counts == 0)[0, 0])
            raise ValueError(f"row {row} of the batch has no element with a positive fraction")
        k = int(counts.max())
        # stable sort by decreasing fraction: deterministic order for equal fractions
        order = torch.sort(-frac, dim=1, stable=True).indices[:, :k]
        amount = frac.gather(1, order)
        total = amount.sum(1, keepdim=True)
        return order, amount / total, amount > 0

    def forward(self, frac: Tensor) -> Tensor:
        index, amount, mask = self.elements(frac)
        h = self.embed(self.table[index]) + self.fraction(_fraction_encoding(amount, self.d_model))
        h = h * mask[..., None]
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        # Roost's weighted attention pooling: weights w_i ~ fraction_i * exp(gate(h_i))
        g = self.gate(h)[..., 0].masked_fill(~mask, float("-inf"))
        g = g - g.max(dim=1, keepdim=True).values
        w = amount * torch.exp(g)
        w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
        return (w[..., None] * self.value(h)).sum(1)


class AttentionEncoder(nn.Module):
    """Set-attention composition model with the MLP's interface (``layers``, ``head``,
    ``hidden_states``, ``embed``, ``fit_scaling``, ``fit_target_scaling``, ``n_extra``), so every
    strategy that takes an MLP source takes this one too.

    ``layers[0]`` is the attention encoder (element embeddings, fraction encoding, ``n_layers``
    attention blocks, weighted pooling) and ``layers[1:]`` are dense blocks of widths ``hidden``;
    ``FineTune(freeze_first=1)`` therefore freezes the attention part and tunes the dense part,
    and ``FrozenFeatures`` reads the pooled vector and the dense activations.

    Parameters
    ----------
    n_in : input columns: 118 fractional-composition columns plus ``n_in - 118`` conditioning columns.
    element_table : name of the core's element table giving the fixed element embeddings
        ("mat2vec" covers all 118 elements; "matscholar" Z <= 103; any of
        ``matxfer.featurize.element_tables()``; missing values are 0).
    d_model, n_layers, n_heads, ff_dim : attention width, blocks, heads and feed-forward width.
    hidden : widths of the dense blocks after pooling; n_out, activation, dropout, n_extra as in MLP
        (``n_extra`` inputs join the pooled vector, after the conditioning columns).
    """

    y_mean: Tensor
    y_std: Tensor
    c_mean: Tensor
    c_std: Tensor

    def __init__(
        self,
        n_in: int = N_ELEMENTS,
        element_table: str = "mat2vec",
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        ff_dim: int = 128,
        hidden: Sequence[int] = (128, 64),
        n_out: int = 1,
        activation: str = "silu",
        dropout: float = 0.0,
        n_extra: int = 0,
    ) -> None:
        super().__init__()
        if n_in < N_ELEMENTS:
            raise ValueError(f"n_in must be >= {N_ELEMENTS} (the fractional composition, then conditioning columns)")
        if n_out < 1 or d_model < 1 or n_layers < 0 or n_heads < 1 or not hidden or any(h < 1 for h in hidden):
            raise ValueError("n_out, d_model, n_heads and every hidden width must be >= 1 (at least one hidden width)")
        if not 0 <= dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        self.init_args: Dict[str, Any] = dict(
            n_in=int(n_in), element_table=str(element_table), d_model=int(d_model), n_layers=int(n_layers),
            n_heads=int(n_heads), ff_dim=int(ff_dim), hidden=[int(h) for h in hidden], n_out=int(n_out),
            activation=activation, dropout=float(dropout), n_extra=int(n_extra),
        )
        from ..featurize import element_table as _table

        table, _ = _table(element_table)
        self.n_in, self.n_out, self.n_extra = int(n_in), int(n_out), int(n_extra)
        self.n_cond = self.n_in - N_ELEMENTS
        self.register_buffer("c_mean", torch.zeros(self.n_cond))
        self.register_buffer("c_std", torch.ones(self.n_cond))
        self.register_buffer("y_mean", torch.zeros(n_out))
        self.register_buffer("y_std", torch.ones(n_out))
        self.layers = nn.ModuleList([_SetEncoder(table, d_model, n_layers, n_heads, ff_dim, dropout, activation)])
        widths = [d_model + self.n_cond + self.n_extra, *[int(h) for h in hidden]]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            block: List[nn.Module] = [nn.Linear(w_in, w_out), _activation(activation)]
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            self.layers.append(nn.Sequential(*block))
        self.head = nn.Linear(widths[-1], n_out)

    #: weight whose trailing input columns see the ``n_extra`` inputs (used by Delta)
    extra_input_weight = "layers.1.0.weight"

    @property
    def n_hidden_layers(self) -> int:
        return len(self.layers)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()

    @torch.no_grad()
    def fit_scaling(self, x: np.ndarray | Tensor) -> AttentionEncoder:
        """Check the fractional-composition columns and set the conditioning columns' scaling."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"expected inputs of shape (n, {self.n_in}), got {tuple(x.shape)}")
        frac = x[:, :N_ELEMENTS]
        bad = torch.nonzero(~(frac >= 0).all(1) | ~(frac > 0).any(1))
        if bad.numel():
            raise ValueError(f"row {int(bad[0, 0])}: the first {N_ELEMENTS} columns must be a fractional composition "
                             "(non-negative, at least one positive; matxfer.featurize(..., preset='fraction'))")
        if self.n_cond:
            c = x[:, N_ELEMENTS:]
            mean = c.mean(0)
            std = c.std(0, unbiased=False)
            self.c_mean.copy_(mean.float())
            self.c_std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)).float())
        return self

    @torch.no_grad()
    def fit_target_scaling(self, y: np.ndarray | Tensor) -> AttentionEncoder:
        """Output scaling from training targets [n] or [n, n_out] (NaN = missing); returns self."""
        mean, std = target_scaling(y, self.n_out)
        self.y_mean.copy_(mean)
        self.y_std.copy_(std)
        return self

    def hidden_states(self, x: Tensor, extra: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """(pooled formula vector, activation of each dense block)."""
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"expected inputs of shape (n, {self.n_in}), got {tuple(x.shape)}")
        x = x.float()
        pooled = self.layers[0](x[:, :N_ELEMENTS])
        parts = [pooled]
        if self.n_cond:
            parts.append((x[:, N_ELEMENTS:] - self.c_mean) / self.c_std)
        if self.n_extra:
            if extra is None or extra.shape[-1] != self.n_extra:
                raise ValueError(f"this AttentionEncoder expects {self.n_extra} extra input column(s)")
            parts.append(extra.to(pooled.dtype))
        h = torch.cat(parts, dim=-1) if len(parts) > 1 else pooled
        states = [pooled]
        for layer in self.layers[1:]:
            h = layer(h)
            states.append(h)
        return tuple(states)

    def embed(self, x: Tensor, extra: Optional[Tensor] = None) -> Tensor:
        return self.hidden_states(x, extra)[-1]

    def forward(self, x: Tensor, extra: Optional[Tensor] = None) -> Tensor:
        return self.head(self.embed(x, extra)) * self.y_std + self.y_mean

    def extra_repr(self) -> str:
        a = self.init_args
        return (f"element_table={a['element_table']!r}, d_model={a['d_model']}, n_layers={a['n_layers']}, "
                f"n_heads={a['n_heads']}, hidden={a['hidden']}, n_cond={self.n_cond}, n_out={a['n_out']}, "
                f"n_extra={a['n_extra']}, dropout={a['dropout']}")


MODEL_REGISTRY[AttentionEncoder.__name__] = AttentionEncoder
