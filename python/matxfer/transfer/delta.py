"""Difference (delta) learning: model the target minus the source model's prediction.

Hutchinson et al. (2019) found this the best way to combine DFT and experimental band gaps:
the source model carries the chemistry, the target model only learns the systematic error.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import numpy as np
import torch

from ..nn import MLP, ArrayData, GraphRegressor, Trainer, predict
from .base import SOURCE_MODELS, TransferStrategy
from .heads import fit_head, predict_head
from .tasks import widened_copy

__all__ = ["Delta"]


class _LogitOffset(torch.nn.Module):
    """Training wrapper: correction network output + the fixed source logit (the last input)."""

    def __init__(self, net: MLP, with_extra: bool) -> None:
        super().__init__()
        self.net, self.with_extra = net, with_extra
        self.y_std = None

    def forward(self, *inputs):
        *net_inputs, offset = inputs
        return self.net(*net_inputs) + offset


class Delta(TransferStrategy):
    """Parameters
    ----------
    source_as_input : also feed the (standardised) source prediction to the difference model.
    head : "mlp" (default: an MLP over the descriptors, same widths and budget as the baseline),
        "ridge", "linear", "gbm" (gradient-boosted trees with squared loss, see
        :func:`matxfer.transfer.heads.gbm_regressor`) or any scikit-learn regressor (on descriptors +
        source prediction).
    init_from_source : with ``head="mlp"``, start the difference network from the source network's
        hidden layers and a zero output layer, so training starts exactly at "target = source"
        and early stopping can only move away from it when the validation rows agree.

    Graph sources (inputs are structures): ``head="mlp"`` trains a copy of the source graph network with a
    zero output layer on the residual (``init_from_source=False``: freshly initialised); the source
    prediction is not an input there (a graph network takes none). Other heads see the source's pooled
    crystal embedding (plus the scaled source prediction with ``source_as_input``).

    Classification (binary targets): a *logit offset*. The source must be a binary classifier
    (e.g. a library ``is_metal`` model); the target logit is the source logit plus a correction
    network trained on the cross-entropy, which starts at zero, so training starts exactly at
    "target classifier = source classifier". A regression source or a multi-class target has no
    logit to offset: use ``FineTune`` or ``FrozenFeatures`` there (a clear error says so).
    """

    name = "delta"

    def __init__(self, source_as_input: bool = True, head: Any = "mlp", init_from_source: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source_as_input = source_as_input
        self.head = head
        self.init_from_source = init_from_source

    def _params(self):
        return {"source_as_input": self.source_as_input, "head": self.head, "init_from_source": self.init_from_source}

    def _graph_difference_network(self, residual: np.ndarray) -> GraphRegressor:
        """A copy of the graph source (or, without ``init_from_source``, a freshly initialised network of
        the same architecture) with a zero output layer, scaled to the residuals."""
        source = self._require_source()
        model = copy.deepcopy(source)
        if not self.init_from_source:
            model.reset_parameters()
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
        for p in model.parameters():
            p.requires_grad_(True)
        return model.fit_target_scaling(residual)

    def _features(self, X, extra: np.ndarray) -> np.ndarray:
        """Inputs of a scikit-learn residual head: descriptors (graph source: the source's pooled crystal
        embedding), the standardised conditioning columns and, with ``source_as_input``, the scaled
        source prediction."""
        if self.graph_source:
            base = predict(self._require_source(), X, method="encode")
        else:
            base = np.nan_to_num(np.asarray(self.descriptors_of(X), dtype=np.float64))
        base = base[:, None] if base.ndim == 1 else base
        conditions = self.conditions_of(X)
        if conditions is not None:
            base = np.concatenate([base, conditions], axis=1)
        return np.concatenate([base, extra], axis=1) if self.source_as_input else base

    def _net_inputs(self, X, extra: Optional[np.ndarray]) -> tuple:
        """Inputs of the MLP difference network: descriptors, then as its extra inputs the scaled source
        prediction / logit (with ``source_as_input``) and the standardised conditioning columns."""
        parts = [p for p in (extra if self.source_as_input else None, self.conditions_of(X)) if p is not None]
        Xd = self.descriptors_of(X)
        return (Xd, np.concatenate(parts, axis=1)) if parts else (Xd,)

    def _difference_network(self, X: np.ndarray, residual: np.ndarray) -> MLP:
        n_extra = (1 if self.source_as_input else 0) + self.n_conditions
        if not self.init_from_source:
            return MLP(X.shape[1], self.hidden, n_extra=n_extra).fit_scaling(X).fit_target_scaling(residual)
        source = self._require_source()
        model = widened_copy(source, n_extra, n_out=1, zero_head=True, copy_scaling=False)
        return model.fit_target_scaling(residual)

    def _source_feature(self, X: np.ndarray):
        source = self._require_source()
        pred = self.source_predict(X)
        scaled = (pred - float(source.y_mean[0])) / float(source.y_std[0])
        return pred, scaled[:, None]

    def _check_classification(self) -> None:
        if self.n_classes != 2:
            raise ValueError(f"Delta for classification needs a binary target (a logit offset); this one has "
                             f"{self.n_classes} classes: use FineTune or FrozenFeatures")
        if self.source_task_ != "classification" or self._require_source().n_out != 1:
            raise ValueError("Delta for classification offsets the logit of a binary source classifier; the source "
                             "is a regression model (use_source(..., task='classification') if it outputs a logit), "
                             "or use FineTune / FrozenFeatures")
        if self.head != "mlp":
            raise ValueError("Delta for classification trains an MLP correction on the source logit: use head='mlp'")

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.is_classifier and self.graph_source:
            raise ValueError("Delta of a graph source supports regression targets only")
        if self.is_classifier:
            self._check_classification()
            logit = self.source_predict(X)
            config = self._net_config(self._target_config())
            torch.manual_seed(config.seed)
            model = self._difference_network(self.descriptors_of(X), np.zeros(len(X)))
            model.y_mean.zero_()
            model.y_std.fill_(1.0)
            extra = ((logit - logit.mean()) / (logit.std() + 1e-12))[:, None]
            self._logit_scale = (float(logit.mean()), float(logit.std() + 1e-12))
            inputs: tuple = (*self._net_inputs(X, extra), logit[:, None])
            wrapper = _LogitOffset(model, self.source_as_input)
            Trainer(config).fit(wrapper, ArrayData(inputs, y, weight=self._row_weight))
            self.target_ = model.cpu().eval()
            return
        pred, extra = self._source_feature(X)
        residual = y - pred
        config = self._target_config()
        if self.head == "mlp" and self.graph_source:
            torch.manual_seed(config.seed)
            graph_model = self._graph_difference_network(residual)
            Trainer(config).fit(graph_model, self._data(X, residual))
            self.target_ = graph_model.cpu().eval()
        elif self.head == "mlp":
            torch.manual_seed(config.seed)
            model = self._difference_network(self.descriptors_of(X), residual)
            Trainer(config).fit(model, ArrayData(self._net_inputs(X, extra), residual))
            self.target_ = model.cpu().eval()
        else:
            self.target_ = fit_head(self.head, self._features(X, extra), residual, self.hidden, config)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.is_classifier:
            logit = self.source_predict(X)
            mean, std = self._logit_scale
            net_inputs = self._net_inputs(X, ((logit - mean) / std)[:, None])
            return self.decision_scores(logit + predict(self.target_, ArrayData(net_inputs)))
        pred, extra = self._source_feature(X)
        if isinstance(self.target_, GraphRegressor):
            return pred + predict(self.target_, X)
        if isinstance(self.target_, SOURCE_MODELS):
            return pred + predict(self.target_, ArrayData(self._net_inputs(X, extra)))
        return pred + predict_head(self.target_, self._features(X, extra))
