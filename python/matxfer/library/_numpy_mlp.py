"""Inference of a saved :class:`matxfer.nn.MLP` with numpy only (no torch).

The library's models are small descriptor MLPs; evaluating them is a few matrix products, so a
user who installed matxfer without the torch extra can still predict with every shipped model.
The arithmetic follows ``MLP.forward`` in float32 step by step (scale, NaN -> 0, clip to the
training range, Linear -> [LayerNorm] -> activation per hidden layer, head, output scaling);
results agree with torch to float32 rounding (not bitwise: BLAS sums in another order).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

__all__ = ["NumpyMLP", "ACTIVATIONS", "BLOCK"]

#: Rows per network evaluation in ``NumpyMLP.raw_output`` (fixed: see there).
BLOCK = 1024


def _silu(h: np.ndarray) -> np.ndarray:
    # x * sigmoid(x) == 0.5 x (1 + tanh(x / 2)); tanh never overflows, unlike exp(-x).
    t = np.tanh(h * np.float32(0.5))
    t += np.float32(1.0)
    t *= h
    t *= np.float32(0.5)
    return t


def _softplus(h: np.ndarray) -> np.ndarray:
    # torch.nn.Softplus(beta=1, threshold=20): identity above 20.
    return np.where(h > 20, h, np.log1p(np.exp(np.minimum(h, 20)))).astype(np.float32)


ACTIVATIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "silu": _silu,
    "relu": lambda h: np.maximum(h, np.float32(0.0)),
    "tanh": np.tanh,
    "softplus": _softplus,
}


class NumpyMLP:
    """A read-only MLP built from ``init_args`` and its state arrays (names as in the torch state dict)."""

    def __init__(self, init_args: Dict[str, Any], state: Dict[str, np.ndarray]) -> None:
        self.init_args = dict(init_args)
        activation = self.init_args.get("activation", "silu")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} has no numpy implementation; load the model with torch")
        if int(self.init_args.get("n_extra", 0)):
            raise ValueError("MLPs with extra inputs are not library models")
        self._act = ACTIVATIONS[activation]
        f32 = lambda k: np.ascontiguousarray(state[k], dtype=np.float32)  # noqa: E731
        self.x_mean, self.x_std = f32("x_mean"), f32("x_std")
        self.z_lo, self.z_hi = f32("z_lo"), f32("z_hi")
        self.y_mean, self.y_std = f32("y_mean"), f32("y_std")
        self.layer_norm = bool(self.init_args.get("layer_norm", False))
        self.layers: List[Tuple[np.ndarray, np.ndarray, Any]] = []
        for i in range(len(self.init_args["hidden"])):
            w, b = f32(f"layers.{i}.0.weight"), f32(f"layers.{i}.0.bias")
            norm = (f32(f"layers.{i}.1.weight"), f32(f"layers.{i}.1.bias")) if self.layer_norm else None
            self.layers.append((np.ascontiguousarray(w.T), b, norm))
        self.head_w, self.head_b = np.ascontiguousarray(f32("head.weight").T), f32("head.bias")
        self.n_in = int(self.init_args["n_in"])
        # The fast path folds the standardisation into the first layer: clipping z = (x - mean) / std
        # to [z_lo, z_hi] is clipping x to [mean + z_lo std, mean + z_hi std], and a missing x
        # (z = 0) is x = mean. This saves one full pass over the descriptors.
        w0, b0, _ = self.layers[0]
        with np.errstate(over="ignore", invalid="ignore"):
            self.x_lo = (self.x_mean + self.z_lo * self.x_std).astype(np.float32)
            self.x_hi = (self.x_mean + self.z_hi * self.x_std).astype(np.float32)
        self.w0_folded = np.ascontiguousarray(w0 / self.x_std[:, None], dtype=np.float32)
        self.b0_folded = (b0 - (self.x_mean / self.x_std) @ w0).astype(np.float32)
        # Prediction fast path (``raw_output``). SiLU(h) = h / (1 + exp(-h)) (torch's formula) costs
        # one exp, one add and one divide in place; the sign flips that make it work on -h are
        # folded into the weights (exact in float32): each layer computes p = -h, then
        # a = p / (1 + exp(p)) = -SiLU(h); the next layer takes -a, i.e. keeps its weights and
        # negates its bias, and the head negates its weights.
        self._fold_neg = activation == "silu" and not self.layer_norm
        if self._fold_neg:
            self._fast_layers = [(-self.w0_folded, -self.b0_folded)]
            self._fast_layers += [(w, -b) for w, b, _ in self.layers[1:]]
            self._fast_head = -self.head_w
        else:
            self._fast_layers = [(self.w0_folded, self.b0_folded)] + [(w, b) for w, b, _ in self.layers[1:]]
            self._fast_head = self.head_w
        self._buffers = threading.local()

    @staticmethod
    def expected_shapes(init_args: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
        """Tensor names and shapes a valid state must hold (checked before a model is built)."""
        n_in, n_out = int(init_args["n_in"]), int(init_args.get("n_out", 1))
        widths = [n_in + int(init_args.get("n_extra", 0)), *[int(h) for h in init_args["hidden"]]]
        shapes: Dict[str, Tuple[int, ...]] = {k: (n_in,) for k in ("x_mean", "x_std", "z_lo", "z_hi")}
        shapes.update(y_mean=(n_out,), y_std=(n_out,))
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            shapes[f"layers.{i}.0.weight"] = (b, a)
            shapes[f"layers.{i}.0.bias"] = (b,)
            if init_args.get("layer_norm"):
                shapes[f"layers.{i}.1.weight"] = (b,)
                shapes[f"layers.{i}.1.bias"] = (b,)
        shapes["head.weight"] = (n_out, widths[-1])
        shapes["head.bias"] = (n_out,)
        return shapes

    def scale(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float32) - self.x_mean) / self.x_std
        np.nan_to_num(z, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(z, self.z_lo, self.z_hi, out=z)

    def _first_layer(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X).all():  # rare: only then pay for the masked copy
            X = np.where(np.isfinite(X), X, self.x_mean)
        X = np.clip(X, self.x_lo, self.x_hi)
        h = X @ self.w0_folded
        h += self.b0_folded
        return h

    def hidden_states(self, X: np.ndarray) -> List[np.ndarray]:
        states = []
        h = X
        for k, (w, b, norm) in enumerate(self.layers):
            if k == 0:
                h = self._first_layer(h)
            else:
                h = h @ w
                h += b
            if norm is not None:
                mu = h.mean(axis=1, keepdims=True)
                var = ((h - mu) ** 2).mean(axis=1, keepdims=True)
                h = (h - mu) / np.sqrt(var + np.float32(1e-5)) * norm[0] + norm[1]
            h = self._act(h)
            states.append(h)
        return states

    def raw_output_reference(self, X: np.ndarray) -> np.ndarray:
        """``raw_output`` through :meth:`hidden_states` (per-layer temporaries, the ``tanh`` form of
        SiLU, one matrix product over all rows); kept as the independent check of the tests."""
        out = self.hidden_states(X)[-1] @ self.head_w
        out += self.head_b
        out *= self.y_std
        out += self.y_mean
        return out

    def _block_buffers(self, block: int):
        """Per-thread buffers for one block (input, pre-activation and activation per layer, head)."""
        cached = getattr(self._buffers, "by_block", None)
        if cached is None or cached[0] != block:
            layers = [(np.empty((block, w.shape[1]), np.float32), np.empty((block, w.shape[1]), np.float32))
                      for w, _ in self._fast_layers]
            cached = (block, np.empty((block, self.n_in), np.float32), layers,
                      np.empty((block, self._fast_head.shape[1]), np.float32))
            self._buffers.by_block = cached
        return cached[1:]

    def raw_output(self, X: np.ndarray, block: int = BLOCK) -> np.ndarray:
        """``head(h) * y_std + y_mean``: the regression value, or the logit for a classifier.

        Rows are evaluated in blocks of exactly ``block`` rows (the last one padded with zeros)
        through per-thread buffers: float32 GEMMs written with ``out=`` and in-place activations.
        BLAS rounds a row differently depending on the matrix shape and the row's position in
        it, so a fixed block shape on a grid of multiples of ``block`` is what makes a row's
        result independent of how the input was chunked (callers keep chunk starts on that grid),
        given the same BLAS thread count (``LibraryModel`` runs BLAS with one thread)."""
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        out = np.empty((n, self._fast_head.shape[1]), dtype=np.float32)
        if n == 0:
            return out
        block = max(1, int(block))
        x, bufs, head = self._block_buffers(block)
        with np.errstate(over="ignore"):  # exp(p) = inf for p > 88: the activation is then -0, as it should be
            for i in range(0, n, block):
                xb = X[i : i + block]
                m = len(xb)
                # Non-finite descriptors (rare) stand for "missing": x = mean, i.e. z = 0. A sum is one
                # cheap pass that is non-finite whenever any entry is (or on overflow: then the exact check runs).
                if not np.isfinite(np.add.reduce(xb, axis=None)) and not np.isfinite(xb).all():
                    xb = np.where(np.isfinite(xb), xb, self.x_mean)
                np.maximum(xb, self.x_lo, out=x[:m])
                np.minimum(x[:m], self.x_hi, out=x[:m])
                if m < block:
                    x[m:] = 0.0
                h = x
                for k, (w, b) in enumerate(self._fast_layers):
                    pre, act = bufs[k]
                    np.matmul(h, w, out=pre)
                    pre += b
                    if self._fold_neg:
                        np.exp(pre, out=act)
                        act += np.float32(1.0)
                        np.divide(pre, act, out=act)
                    else:
                        norm = self.layers[k][2]
                        p = pre
                        if norm is not None:
                            mu = p.mean(axis=1, keepdims=True)
                            var = ((p - mu) ** 2).mean(axis=1, keepdims=True)
                            p = (p - mu) / np.sqrt(var + np.float32(1e-5)) * norm[0] + norm[1]
                        act[...] = self._act(p)
                    h = act
                np.matmul(h, self._fast_head, out=head)
                out[i : i + m] = head[:m]
        out += self.head_b
        out *= self.y_std
        out += self.y_mean
        return out
