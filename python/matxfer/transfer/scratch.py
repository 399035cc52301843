"""From-scratch baseline: the same descriptor, architecture and training budget, no source."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from ..nn import MLP, ArrayData, AttentionEncoder, Trainer, predict
from .base import TransferStrategy

__all__ = ["FromScratch", "ARCHITECTURES"]

#: network families FromScratch can train
ARCHITECTURES = ("mlp", "attention")


class FromScratch(TransferStrategy):
    """A network trained on the target only (the reference every transfer result is compared with).

    ``pretrain``/``use_source`` are accepted and ignored, so it drops into any comparison loop.

    Parameters
    ----------
    architecture : "mlp" (default: an MLP of widths ``hidden`` over descriptors) or "attention"
        (:class:`matxfer.nn.AttentionEncoder` over a fractional composition, see
        :func:`matxfer.nn.attention_inputs`; ``hidden`` gives its dense widths).
    architecture_args : further keyword arguments of the network (e.g. ``{"d_model": 64}``).
    dropout : dropout rate of the network (needed for :class:`matxfer.transfer.MCDropout`).
    """

    name = "scratch"
    architecture = "mlp"
    architecture_args: Optional[Dict[str, Any]] = None
    dropout = 0.0

    def __init__(self, architecture: str = "mlp", architecture_args: Optional[Dict[str, Any]] = None,
                 dropout: float = 0.0, **kwargs) -> None:
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
        if not 0 <= dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if architecture == "attention" and "hidden" not in kwargs:
            kwargs["hidden"] = (128, 64)
        super().__init__(**kwargs)
        self.architecture = architecture
        self.architecture_args = dict(architecture_args or {})
        self.dropout = float(dropout)

    def _params(self):
        return {"architecture": self.architecture} if self.architecture != "mlp" else {}

    def pretrain(self, X_source=None, y_source=None) -> FromScratch:
        return self

    def use_source(self, model=None, X_source=None, y_source=None, task=None) -> FromScratch:
        self.is_adapted_ = False
        return self

    def build_network(self, n_in: int):
        cls = AttentionEncoder if self.architecture == "attention" else MLP
        args = {**(self.architecture_args or {}), "hidden": self.hidden, "n_out": self._net_outputs(),
                "dropout": self.dropout}
        return cls(n_in, **args)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        config = self._net_config(self._target_config())
        torch.manual_seed(config.seed)
        model = self.build_network(X.shape[1]).fit_scaling(X)
        if not self.is_classifier:
            model.fit_target_scaling(y)
        Trainer(config).fit(model, ArrayData(X, y, weight=self._row_weight))
        self.target_ = model.cpu().eval()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.is_classifier:
            return self._net_proba(self.target_, X)
        return predict(self.target_, X)
