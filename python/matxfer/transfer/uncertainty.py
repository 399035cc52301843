"""A cheap predictive standard deviation: Monte-Carlo dropout (Gal & Ghahramani, ICML 2016).

One network trained with dropout is evaluated ``n_samples`` times with dropout left on; the spread
of those predictions is the standard deviation. It costs one training run instead of the k runs
of a seed ensemble (prediction costs ``n_samples`` forward passes, which is cheap).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional

import numpy as np
import torch
from torch import nn

from .base import TransferStrategy

__all__ = ["MCDropout", "dropout_modules"]


def dropout_modules(obj: Any, _seen: Optional[set] = None) -> List[nn.Dropout]:
    """Every ``nn.Dropout`` with p > 0 inside the networks held by ``obj`` (a strategy, a module, or
    lists / dicts of them), each listed once."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, nn.Module):
        return [m for m in obj.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    found: List[nn.Dropout] = []
    if isinstance(obj, TransferStrategy):
        values: Any = obj.__dict__.values()
    elif isinstance(obj, dict):
        values = obj.values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    else:
        return []
    for v in values:
        for m in dropout_modules(v, seen):
            if all(m is not f for f in found):
                found.append(m)
    return found


@contextlib.contextmanager
def _dropout_on(modules: List[nn.Dropout]) -> Iterator[None]:
    """Dropout stays active in these modules even in eval mode (a forward hook redraws the mask)."""

    def hook_for(p: float):
        return lambda module, inputs, output: nn.functional.dropout(inputs[0], p=p, training=True)

    handles = [m.register_forward_hook(hook_for(float(m.p))) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class MCDropout(TransferStrategy):
    """Monte-Carlo dropout around any network strategy whose networks contain dropout.

    Parameters
    ----------
    strategy : a regression strategy whose fitted networks have dropout: ``FineTune``, ``Delta``
        (with ``init_from_source``) or ``MultiTask`` over a source trained with dropout
        (``pretrain_mlp(..., dropout=0.1)``, ``pretrain_attention(..., dropout=0.1)``), or
        ``FromScratch(dropout=0.1)``. A fresh copy is adapted in ``adapt``; it trains with dropout as usual.
    n_samples : stochastic forward passes per prediction.
    seed : seeds the dropout masks (the result is reproducible and independent of the global RNG).

    ``predict(X)`` is the deterministic (dropout-off) prediction of the wrapped strategy;
    ``predict(X, return_std=True)`` returns that prediction and the standard deviation of the
    ``n_samples`` dropout predictions. Uncalibrated as it is: wrap in :class:`Conformal` for
    intervals with a stated coverage (``Conformal(MCDropout(...), normalize=True)``).
    """

    supports_conditions = False  # its members take the conditioning columns

    name = "mc_dropout"

    def __init__(self, strategy: TransferStrategy, n_samples: int = 30, seed: int = 0,
                 output_floor: Optional[float] = None) -> None:
        if int(n_samples) < 2:
            raise ValueError("n_samples must be >= 2")
        super().__init__(seed=seed, output_floor=output_floor, task="regression")
        self.strategy = strategy
        self.n_samples = int(n_samples)
        self.needs_source_data = strategy.needs_source_data
        self.source_model_ = strategy.source_model_

    def _params(self):
        return {"strategy": type(self.strategy).__name__, "n_samples": self.n_samples}

    def pretrain(self, X_source, y_source) -> MCDropout:
        self.strategy.pretrain(X_source, y_source)
        self.source_model_ = self.strategy.source_model_
        return self

    def use_source(self, model, X_source=None, y_source=None, task=None) -> MCDropout:
        self.strategy.use_source(model, X_source, y_source, task=task)
        self.source_model_ = self.strategy.source_model_
        self.is_adapted_ = False
        return self

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        inner = self.strategy.fresh()
        inner.adapt(X, y)
        if not dropout_modules(inner):
            raise ValueError(f"MCDropout: the fitted {type(inner).__name__} has no dropout layer; train its source with "
                             "dropout (pretrain_mlp(..., dropout=0.1) / pretrain_attention(..., dropout=0.1)) or use "
                             "FromScratch(dropout=0.1)")
        self.target_ = inner

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.target_.predict(X)

    def sample(self, X) -> np.ndarray:
        """The ``n_samples`` dropout predictions [n_samples, n] (reproducible for a given ``seed``)."""
        self._require_adapted()
        X = np.asarray(X, dtype=np.float64)
        with torch.random.fork_rng(devices=[]), _dropout_on(dropout_modules(self.target_)):
            preds = []
            for t in range(self.n_samples):
                torch.manual_seed(self.seed * 100003 + t)
                preds.append(self.target_.predict(X))
        return np.asarray(preds, dtype=np.float64)

    def _predict_with_std(self, X: np.ndarray):
        return self._predict(X), self.sample(X).std(axis=0, ddof=1)
