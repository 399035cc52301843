"""Averaging several strategies (or one strategy over several seeds)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..nn import MLP
from .base import TransferStrategy

__all__ = ["Ensemble"]


class Ensemble(TransferStrategy):
    """Mean prediction of member strategies, each adapted on the same target rows.

    ``Ensemble([Delta(), FineTune()])`` combines methods; ``Ensemble([Delta(seed=s) for s in range(5)])``
    averages seeds. ``pretrain`` trains one source model that every member shares;
    ``use_source`` hands a trained one to every member.
    """

    name = "ensemble"

    def __init__(self, members: Sequence[TransferStrategy], output_floor: Optional[float] = None, **kwargs) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        super().__init__(output_floor=output_floor, **kwargs)
        self.members = list(members)
        self.needs_source_data = any(m.needs_source_data for m in self.members)

    def _params(self):
        return {"members": [type(m).__name__ for m in self.members]}

    def use_source(self, model: MLP, X_source=None, y_source=None) -> "Ensemble":
        super().use_source(model, X_source, y_source)
        self.members = [m.use_source(model, X_source, y_source) for m in self.members]
        return self

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        self.target_ = [m.fresh().adapt(X, y) for m in self.members]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(X) for m in self.target_], axis=0)
