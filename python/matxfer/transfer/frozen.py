"""Frozen features: hidden activations of a source model become descriptors for a new head.

This is the XenonPy ``FrozenFeaturizer`` idea (Yamada et al., ACS Cent. Sci. 2019): with only
tens of target samples a ridge or small head on features learned from a related property beats
training a network on the raw descriptors.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch

from ..nn import predict
from .base import TransferStrategy
from .heads import fit_head, predict_head

__all__ = ["FrozenFeatures"]


def _graph_states(model, data) -> list:
    """Per-graph hidden states of a graph source (see ``CGCNN.hidden_states``), in batches, as float64."""
    from torch import Tensor

    outs: list = []
    for start in range(0, len(data), 4096):
        inputs, _, _ = data.batch(torch.arange(start, min(start + 4096, len(data))))
        states = model.hidden_states(*inputs)
        outs.append([s.double().numpy() for s in states if isinstance(s, Tensor)])
    if not outs:
        return [np.zeros((0, model.embedding_dim))] * model.net.n_hidden_layers
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


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
    include_descriptors : also pass the raw descriptors (descriptor sources only).
    Conditioning columns (``n_conditions``) are appended, standardised, after everything else.

    Graph sources: the features are the pooled crystal embedding (mean of the atom states after the
    convolutions) and the output of each readout layer (``layers="last"``: the readout embedding only).
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
        graph = self.graph_source
        source_pred = None
        with torch.no_grad():
            model.eval()
            if graph:
                graphs = self._inputs(X)
                states = _graph_states(model, graphs)
                if self.include_source_prediction:
                    source_pred = predict(model, graphs)[:, None]
            else:
                Xt = torch.as_tensor(np.asarray(self.descriptors_of(X), dtype=np.float32))
                states = model.hidden_states(Xt)
                if self.include_source_prediction:
                    source_pred = model(Xt).double().numpy()
        n_layers = len(states)
        if self.layers == "last":
            chosen = [n_layers - 1]
        elif self.layers == "all":
            chosen = list(range(n_layers))
        elif isinstance(self.layers, str):
            raise ValueError(f"layers must be 'last', 'all' or a sequence of layer indices, not {self.layers!r}")
        else:
            chosen = [i % n_layers for i in self.layers]
        parts = [np.asarray(states[i], dtype=np.float64) for i in chosen]
        if source_pred is not None:
            parts.append(np.asarray(source_pred, dtype=np.float64))
        if self.include_descriptors:
            if graph:
                raise ValueError("include_descriptors needs a descriptor source; a graph source's inputs are structures")
            parts.append(np.nan_to_num(np.asarray(self.descriptors_of(X), dtype=np.float64)))
        conditions = self.conditions_of(X)
        if conditions is not None:
            parts.append(conditions)
        return np.concatenate(parts, axis=1)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        H = self.transform(X)
        self.target_ = fit_head(self.head, H, y, self.head_hidden, self._target_config(), n_classes=self.n_classes,
                                weight=self._row_weight, loss=self.loss)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return predict_head(self.target_, self.transform(X), n_classes=self.n_classes)
