"""Frozen features: hidden activations of a source model become descriptors for a new head.

This is the XenonPy ``FrozenFeaturizer`` idea (Yamada et al., ACS Cent. Sci. 2019): with only
tens of target samples a ridge or small head on features learned from a related property beats
training a network on the raw descriptors.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch

from .base import TransferStrategy
from .heads import fit_head, predict_head

__all__ = ["FrozenFeatures"]


class FrozenFeatures(TransferStrategy):
    """Parameters
    ----------
    head : "ridge" (standardised RidgeCV, default), "linear", "mlp", "gbm" (gradient-boosted trees,
        see :func:`matxfer.transfer.heads.gbm_regressor`), or any scikit-learn regressor; for
        classification the same names give logistic regression (L2 strength by inner 5-fold CV),
        unpenalised logistic regression, an MLP classifier and gradient-boosted classification trees,
        or pass any scikit-learn classifier.
    layers : which hidden layers to concatenate: "last", "all", or a sequence of indices
        (negative counts from the end).
    include_source_prediction : also pass the source model's prediction as a feature.
    include_descriptors : also pass the raw descriptors.
    head_hidden : hidden widths when ``head="mlp"``.
    """

    name = "frozen"

    def __init__(
        self,
        head: Any = "ridge",
        layers: Union[str, Sequence[int]] = "all",
        include_source_prediction: bool = True,
        include_descriptors: bool = False,
        head_hidden: Sequence[int] = (128, 64),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.head = head
        self.layers = layers
        self.include_source_prediction = include_source_prediction
        self.include_descriptors = include_descriptors
        self.head_hidden = tuple(head_hidden)

    def _params(self):
        return {"head": self.head, "layers": self.layers, "include_source_prediction": self.include_source_prediction}

    def transform(self, X) -> np.ndarray:
        """The frozen descriptors for ``X`` (deterministic: eval mode, no dropout)."""
        model = self._require_source()
        n_layers = model.n_hidden_layers
        if self.layers == "last":
            chosen = [n_layers - 1]
        elif self.layers == "all":
            chosen = list(range(n_layers))
        elif isinstance(self.layers, str):
            raise ValueError(f"layers must be 'last', 'all' or a sequence of layer indices, not {self.layers!r}")
        else:
            chosen = [i % n_layers for i in self.layers]
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
        with torch.no_grad():
            model.eval()
            states = model.hidden_states(Xt)
            parts = [states[i].double().numpy() for i in chosen]
            if self.include_source_prediction:
                parts.append(model(Xt).double().numpy())
        if self.include_descriptors:
            parts.append(np.nan_to_num(np.asarray(X, dtype=np.float64)))
        return np.concatenate(parts, axis=1)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        H = self.transform(X)
        self.target_ = fit_head(self.head, H, y, self.head_hidden, self._target_config(), n_classes=self.n_classes,
                                weight=self._row_weight, loss=self.loss)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return predict_head(self.target_, self.transform(X), n_classes=self.n_classes)
