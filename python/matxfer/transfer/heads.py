"""Target-side regressors shared by the frozen-feature and difference strategies."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..nn import MLP, ArrayData, TrainConfig, Trainer, predict

__all__ = ["fit_head", "predict_head", "HEAD_CHOICES"]

HEAD_CHOICES = ("ridge", "linear", "mlp")


def _sklearn_head(head: Any):
    from sklearn.base import clone
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if head == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 22)))
    if head == "linear":
        return make_pipeline(StandardScaler(), LinearRegression())
    if hasattr(head, "fit") and hasattr(head, "predict"):
        return clone(head)
    raise ValueError(f"head must be one of {HEAD_CHOICES} or a scikit-learn regressor, got {head!r}")


def fit_head(head: Any, H: np.ndarray, y: np.ndarray, hidden: Sequence[int], config: TrainConfig):
    """Fit a regressor from features ``H`` to ``y``: "ridge", "linear", "mlp" or any scikit-learn regressor."""
    if head == "mlp":
        torch.manual_seed(config.seed)
        model = MLP(H.shape[1], hidden).fit_scaling(H).fit_target_scaling(y)
        Trainer(config).fit(model, ArrayData(H, y))
        return model.cpu().eval()
    model = _sklearn_head(head)
    model.fit(H, y)
    return model


def predict_head(model: Any, H: np.ndarray) -> np.ndarray:
    if isinstance(model, MLP):
        return predict(model, H)
    return np.asarray(model.predict(H), dtype=np.float64).reshape(-1)
