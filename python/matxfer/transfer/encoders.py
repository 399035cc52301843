"""Source networks other than the descriptor MLP: the attention composition encoder."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ..nn import ArrayData, AttentionEncoder, TrainConfig, Trainer
from .base import as_2d, default_source_config

__all__ = ["pretrain_attention"]


def pretrain_attention(X: np.ndarray, y: np.ndarray, config: Optional[TrainConfig] = None, **encoder_kwargs: Any
                       ) -> AttentionEncoder:
    """Train an :class:`matxfer.nn.AttentionEncoder` source on ``X`` (from :func:`matxfer.nn.attention_inputs`:
    fractional composition, then any conditioning columns) and ``y`` [n] or [n, T] (NaN = no label);
    returns it in eval mode, ready for ``strategy.use_source(model, X, y)``."""
    X = as_2d(X)
    y = np.asarray(y, dtype=np.float64)
    config = config or default_source_config()
    torch.manual_seed(config.seed)
    n_out = 1 if y.ndim == 1 else y.shape[1]
    model = AttentionEncoder(X.shape[1], n_out=n_out, **encoder_kwargs).fit_scaling(X).fit_target_scaling(y)
    Trainer(config).fit(model, ArrayData(X, y))
    return model.cpu().eval()
