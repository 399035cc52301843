"""The uniform interface shared by every transfer strategy.

A strategy is used in three steps::

    strategy.pretrain(X_source, y_source)   # or strategy.use_source(model, X_source, y_source)
    strategy.adapt(X_target, y_target)
    strategy.predict(X_new)

``fresh()`` returns an independent copy that keeps the pretrained state and drops anything
learned from the target, which is what cross-validation uses for every fold: fine-tuning in one
fold can never leak into the next.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from ..nn import MLP, ArrayData, TrainConfig, Trainer, predict

__all__ = ["TransferStrategy", "default_source_config", "default_target_config", "pretrain_mlp", "as_2d"]


def default_source_config(**changes) -> TrainConfig:
    """Training settings for a source (DFT, ~1e5 rows) model."""
    return TrainConfig(
        epochs=60, batch_size=512, lr=2e-3, weight_decay=1e-4, patience=10, val_fraction=0.05, loss="l1"
    ).replace(**changes)


def default_target_config(**changes) -> TrainConfig:
    """Training settings for a target (experimental, 1e1-1e4 rows) model; same budget for every strategy."""
    return TrainConfig(
        epochs=150, batch_size=128, lr=1e-3, weight_decay=1e-3, patience=20, val_fraction=0.1, loss="l1"
    ).replace(**changes)


def as_2d(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"descriptors must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    return X


def _as_y(y, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("targets contain NaN or inf")
    return y


def pretrain_mlp(
    X: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int] = (512, 256, 128),
    config: Optional[TrainConfig] = None,
    dropout: float = 0.0,
    **mlp_kwargs: Any,
) -> MLP:
    """Train a descriptor MLP (input and output scaling fitted on ``X``/``y``) and return it in eval mode."""
    X = as_2d(X)
    y = np.asarray(y, dtype=np.float64)
    config = config or default_source_config()
    torch.manual_seed(config.seed)
    n_out = 1 if y.ndim == 1 else y.shape[1]
    model = MLP(X.shape[1], hidden, n_out=n_out, dropout=dropout, **mlp_kwargs).fit_scaling(X).fit_target_scaling(y)
    Trainer(config).fit(model, ArrayData(X, y))
    return model.cpu().eval()


class TransferStrategy:
    """Base class: subclasses implement ``_adapt`` and ``_predict``; most reuse ``pretrain`` as is.

    Parameters shared by all strategies
    -----------------------------------
    hidden : widths of the source MLP built by ``pretrain``.
    source_config, target_config : :class:`matxfer.nn.TrainConfig` for source and target training.
    seed : seeds every model built on the target.
    output_floor : predictions are clipped from below at this value (e.g. 0 for band gaps,
        which cannot be negative); ``None`` leaves them as they are.
    """

    name = "base"
    #: whether ``adapt`` also trains on the source rows (multi-task, latent variable)
    needs_source_data = False

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256, 128),
        source_config: Optional[TrainConfig] = None,
        target_config: Optional[TrainConfig] = None,
        seed: int = 0,
        output_floor: Optional[float] = None,
    ) -> None:
        self.output_floor = output_floor
        self.hidden = tuple(int(h) for h in hidden)
        self.source_config = source_config or default_source_config()
        self.target_config = target_config or default_target_config()
        self.seed = int(seed)
        self.source_model_: Optional[MLP] = None
        self._X_source: Optional[np.ndarray] = None
        self._y_source: Optional[np.ndarray] = None
        #: everything learned from the target lives here, so ``fresh()`` can drop it in one step
        self.target_: Any = None
        self.is_adapted_ = False

    # -- source -----------------------------------------------------------------------------------
    def pretrain(self, X_source, y_source) -> "TransferStrategy":
        """Train the source model on (descriptors, property) of the source data set."""
        X = as_2d(X_source)
        y = _as_y(y_source, len(X))
        model = pretrain_mlp(X, y, self.hidden, self.source_config.replace(seed=self.seed))
        return self.use_source(model, X, y)

    def use_source(self, model: MLP, X_source=None, y_source=None) -> "TransferStrategy":
        """Adopt an already trained source model (a private copy is kept); strategies that train on the
        source rows during ``adapt`` also need ``X_source``/``y_source``."""
        if not isinstance(model, MLP):
            raise TypeError("the source model must be a matxfer.nn.MLP")
        self.source_model_ = copy.deepcopy(model).cpu().eval()
        for p in self.source_model_.parameters():
            p.requires_grad_(False)
        if X_source is not None:
            self._X_source = as_2d(X_source)
            self._y_source = _as_y(y_source, len(self._X_source))
        if self.needs_source_data and self._X_source is None:
            raise ValueError(f"{type(self).__name__} trains on the source rows: pass X_source and y_source")
        self.is_adapted_ = False
        return self

    def _require_source(self) -> MLP:
        if self.source_model_ is None:
            raise RuntimeError(f"{type(self).__name__}: call pretrain() or use_source() before adapt()")
        return self.source_model_

    def source_predict(self, X) -> np.ndarray:
        return predict(self._require_source(), as_2d(X))

    # -- target -----------------------------------------------------------------------------------
    def adapt(self, X, y) -> "TransferStrategy":
        """Learn the target task from descriptors ``X`` and labels ``y``; returns self."""
        X = as_2d(X)
        y = _as_y(y, len(X))
        self._adapt(X, y)
        self.is_adapted_ = True
        return self

    fit = adapt  # scikit-learn spelling

    def predict(self, X) -> np.ndarray:
        if not self.is_adapted_:
            raise RuntimeError(f"{type(self).__name__}: call adapt() before predict()")
        pred = np.asarray(self._predict(as_2d(X)), dtype=np.float64)
        return pred if self.output_floor is None else np.maximum(pred, self.output_floor)

    def fresh(self) -> "TransferStrategy":
        """An independent copy holding the pretrained state only (target state dropped)."""
        state = {k: v for k, v in self.__dict__.items() if k != "target_"}
        # Deep-copy everything except the (read-only, possibly large) source arrays.
        memo = {id(self._X_source): self._X_source, id(self._y_source): self._y_source}
        clone = copy.copy(self)
        clone.__dict__ = copy.deepcopy(state, memo)
        clone.target_ = None
        clone.is_adapted_ = False
        return clone

    def _target_config(self, **changes) -> TrainConfig:
        return self.target_config.replace(seed=self.seed, **changes)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self) -> Dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        state = "adapted" if self.is_adapted_ else ("pretrained" if self.source_model_ is not None else "new")
        return f"{type(self).__name__}({params}{', ' if params else ''}hidden={list(self.hidden)}, seed={self.seed}) [{state}]"
