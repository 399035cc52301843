"""Fine-tuning: start from the source network and keep training on the target."""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..nn import MLP, ArrayData, GraphRegressor, Trainer, predict
from .base import TransferStrategy
from .tasks import widened_copy, with_new_head

__all__ = ["FineTune"]


def graph_with_new_head(source: GraphRegressor, n_out: int, seed: int) -> GraphRegressor:
    """A trainable copy of a graph source (embedding, convolutions, readout) with a zero ``n_out``-output
    layer and identity output scaling: logits for a classification target. The zero layer starts every
    class at the same probability; a randomly initialised one starts from logits that already follow
    the source's property with a random sign (on perov_5 that left one seed of three at ROC-AUC 0.53
    after 8 epochs, against 0.96-0.97 for the others)."""
    torch.manual_seed(seed)
    model = GraphRegressor(source.init_args["graph"], n_out=int(n_out), graph_options=source.graph_options)
    state = model.state_dict()
    head = {f"net.head.{k}" for k, _ in model.head.named_parameters()}
    for key, value in source.state_dict().items():
        if key not in head and key not in ("y_mean", "y_std"):
            state[key] = value.clone()
    model.load_state_dict(state)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


def with_condition_inputs(model: MLP, n_conditions: int) -> MLP:
    """A copy of ``model`` with ``n_conditions`` more extra inputs into its first layer, their weights
    zero: it computes exactly what ``model`` computes until training moves them."""
    if model.n_extra:
        raise ValueError("conditioning columns need a source MLP without extra inputs (n_extra=0)")
    return widened_copy(model, n_conditions)


class FineTune(TransferStrategy):
    """Parameters
    ----------
    freeze_first : number of hidden layers (counted from the input) whose weights stay fixed;
        0 fine-tunes everything, ``n_hidden_layers`` trains only the head.
    layer_lr_decay : per-layer learning rates ``lr * decay**(distance from the head)``
        (discriminative fine-tuning); ``None`` uses one learning rate.
    layer_lrs : explicit learning rates, one per hidden layer then one for the head; overrides
        ``layer_lr_decay``.
    refit_output_scaling : reset the output scaling to the target's mean and spread (useful when
        the target property differs in units or range from the source).
    Classification: a binary source classifier keeps its head (its logit is the starting point) for a
    binary target; any other source (a regression model, or a class count that differs) gets a new
    output layer with one logit (binary) or one per class, and the whole network is then fine-tuned.
    lr : learning rate for fine-tuning (default: a third of the target config's).

    Graph sources (a :class:`matxfer.nn.GraphRegressor`, a CGCNN or a structure library model): the
    inputs are structures; the "hidden layers" are the atom embedding, each convolution and each
    readout layer, in that order (``freeze_first=1 + n_conv`` trains only the readout and head).
    A classification target gets a fresh output layer (one logit, or one per class) on the copied network.

    Conditioning columns (``n_conditions``): the copied network gets that many new first-layer inputs
    (standardised conditions) with zero weights, so fine-tuning starts at the source's prediction.
    """

    name = "finetune"

    def __init__(
        self,
        freeze_first: int = 0,
        layer_lr_decay: Optional[float] = None,
        layer_lrs: Optional[Sequence[float]] = None,
        refit_output_scaling: bool = False,
        lr: Optional[float] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.freeze_first = int(freeze_first)
        self.layer_lr_decay = layer_lr_decay
        self.layer_lrs = None if layer_lrs is None else [float(v) for v in layer_lrs]
        self.refit_output_scaling = refit_output_scaling
        self.lr = lr

    def _params(self):
        return {"freeze_first": self.freeze_first, "layer_lr_decay": self.layer_lr_decay, "lr": self.lr}

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        source = self._require_source()
        model: Any
        if self.is_classifier and self.graph_source:
            model = graph_with_new_head(source, self.n_logits, self.seed)
        elif self.is_classifier:
            keep = self.source_task_ == "classification" and self.n_logits == 1
            model = with_new_head(source, self.n_logits, self.seed, keep_head=keep)
        else:
            model = copy.deepcopy(source)
        if self.n_conditions:
            model = with_condition_inputs(model, self.n_conditions)
        n_layers = model.n_hidden_layers
        if not 0 <= self.freeze_first <= n_layers:
            raise ValueError(f"freeze_first must be in [0, {n_layers}]")
        if self.layer_lrs is not None and len(self.layer_lrs) != n_layers + 1:
            raise ValueError(f"layer_lrs needs {n_layers + 1} values (one per hidden layer, then the head)")
        for p in model.parameters():
            p.requires_grad_(True)
        for layer in model.layers[: self.freeze_first]:
            for p in layer.parameters():
                p.requires_grad_(False)
        if self.refit_output_scaling and not self.is_classifier:
            model.fit_target_scaling(y)
        config = self._net_config(self._target_config())
        base_lr = self.lr if self.lr is not None else config.lr / 3
        blocks = [*model.layers, model.head]
        groups = []
        for i, block in enumerate(blocks):
            if self.layer_lrs is not None:
                lr = self.layer_lrs[i]
            elif self.layer_lr_decay is not None:
                lr = base_lr * self.layer_lr_decay ** (len(blocks) - 1 - i)
            else:
                lr = base_lr
            groups.append({"params": list(block.parameters()), "lr": lr})
        torch.manual_seed(config.seed)
        Trainer(config.replace(lr=base_lr)).fit(model, self._target_data(X, y, self._row_weight), param_groups=groups)
        self.target_ = model.cpu().eval()

    def _target_data(self, X, y=None, weight=None):
        if not self.n_conditions:
            return X if y is None else self._data(X, y, weight)
        return ArrayData((self.descriptors_of(X), self.conditions_of(X)), y, weight=weight)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        data = self._target_data(X)
        if self.is_classifier:
            return self._net_proba(self.target_, data)
        return predict(self.target_, data)
