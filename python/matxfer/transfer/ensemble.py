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

    Classification: the mean of the members' class probabilities (the members must resolve the
    same task; the ensemble's ``task`` is handed to members that leave theirs unset).
    Uncertainty: ``predict(X, return_std=True)`` returns the mean and the standard deviation of the
    member predictions (a seed or deep ensemble; wrap in :class:`Conformal` to calibrate it).
    """

    supports_conditions = False  # its members take the conditioning columns

    name = "ensemble"

    def __init__(self, members: Sequence[TransferStrategy], output_floor: Optional[float] = None, **kwargs) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        super().__init__(output_floor=output_floor, **kwargs)
        self.members = list(members)
        self.needs_source_data = any(m.needs_source_data for m in self.members)

    def _params(self):
        return {"members": [type(m).__name__ for m in self.members]}

    def use_source(self, model: MLP, X_source=None, y_source=None, task: Optional[str] = None) -> Ensemble:
        super().use_source(model, X_source, y_source, task=task)
        self.members = [m.use_source(model, X_source, y_source, task=self.source_task_) for m in self.members]
        return self

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        labels = y
        if self.is_classifier:
            classes = self.classes_ or []
            numeric = all(isinstance(c, (int, float, np.number)) and not isinstance(c, bool) for c in classes)
            labels = (np.asarray(classes) if numeric else np.asarray(classes, dtype=object))[y.astype(np.int64)]
        fitted = []
        for m in self.members:
            member = m.fresh()
            if member.task is None:
                member.task = self.task_
            if self.is_classifier and member.class_weight is None and not member._balanced:
                member.class_weight = self.class_weight
                member._balanced = self._balanced
            fitted.append(member.adapt(X, labels))
        if any(m.task_ != self.task_ for m in fitted):
            raise ValueError("ensemble members resolved different tasks; give them task=... explicitly")
        self.target_ = fitted

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.is_classifier:
            return np.mean([m.predict_proba(X) for m in self.target_], axis=0)
        return np.mean([m.predict(X) for m in self.target_], axis=0)

    def _predict_with_std(self, X: np.ndarray):
        preds = np.array([m.predict(X) for m in self.target_])
        if len(preds) < 2:
            raise ValueError("a predictive standard deviation from an ensemble needs at least two members")
        return preds.mean(axis=0), preds.std(axis=0, ddof=1)
