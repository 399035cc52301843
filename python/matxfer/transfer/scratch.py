"""From-scratch baseline: the same descriptor, architecture and training budget, no source."""

from __future__ import annotations

import numpy as np
import torch

from ..nn import MLP, ArrayData, Trainer, predict
from .base import TransferStrategy

__all__ = ["FromScratch"]


class FromScratch(TransferStrategy):
    """An MLP trained on the target only (the reference every transfer result is compared with).

    ``pretrain``/``use_source`` are accepted and ignored, so it drops into any comparison loop.
    """

    name = "scratch"

    def pretrain(self, X_source=None, y_source=None) -> FromScratch:
        return self

    def use_source(self, model=None, X_source=None, y_source=None, task=None) -> FromScratch:
        self.is_adapted_ = False
        return self

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        config = self._net_config(self._target_config())
        torch.manual_seed(config.seed)
        model = MLP(X.shape[1], self.hidden, n_out=self._net_outputs()).fit_scaling(X)
        if not self.is_classifier:
            model.fit_target_scaling(y)
        Trainer(config).fit(model, ArrayData(X, y, weight=self._row_weight))
        self.target_ = model.cpu().eval()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.is_classifier:
            return self._net_proba(self.target_, X)
        return predict(self.target_, X)
