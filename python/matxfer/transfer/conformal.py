"""Calibrated predictive uncertainty: split-conformal intervals around any regression strategy.

Split-conformal prediction (Vovk et al. 2005; Lei et al., JASA 2018): the wrapped strategy is
adapted on part of the training rows, and the absolute residuals on the held-out *calibration*
rows (divided by the strategy's own standard deviation when it has one, e.g. an :class:`Ensemble`)
give the interval half-width. For exchangeable rows an interval at ``coverage`` c covers a new row
with probability at least c (and at most c + 1/(n_cal + 1)).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .base import TransferStrategy, as_2d

__all__ = ["Conformal", "interval_calibration"]

_Z68 = 0.6826894921370859  # P(|Z| < 1) for a standard normal


class Conformal(TransferStrategy):
    """Parameters
    ----------
    strategy : any (pretrained) regression strategy; a fresh copy is adapted in ``adapt``.
    calibration_fraction : share of the training rows held out for calibration (seeded by ``seed``).
    normalize : divide residuals by the strategy's predictive std ("auto": when it has one,
        e.g. an Ensemble of seeds; True: require it; False: constant-width intervals).

    ``predict(X, return_std=True)`` returns the mean and a calibrated std (half-width of the 68.27 %
    interval, so mean +- std covers 68.27 % like a Gaussian sigma); ``predict_interval(X, coverage)``
    gives (lower, upper) for any coverage.
    """

    supports_conditions = False  # its members take the conditioning columns

    name = "conformal"

    def __init__(self, strategy: TransferStrategy, calibration_fraction: float = 0.2, normalize="auto",
                 seed: int = 0, output_floor: Optional[float] = None) -> None:
        if not 0 < calibration_fraction < 1:
            raise ValueError("calibration_fraction must be in (0, 1)")
        if normalize not in ("auto", True, False):
            raise ValueError("normalize must be 'auto', True or False")
        super().__init__(seed=seed, output_floor=output_floor, task="regression")
        self.strategy = strategy
        self.calibration_fraction = float(calibration_fraction)
        self.normalize = normalize
        self.needs_source_data = strategy.needs_source_data
        self.source_model_ = strategy.source_model_

    def _params(self):
        return {"strategy": type(self.strategy).__name__, "calibration_fraction": self.calibration_fraction}

    def pretrain(self, X_source, y_source) -> Conformal:
        self.strategy.pretrain(X_source, y_source)
        self.source_model_ = self.strategy.source_model_
        return self

    def use_source(self, model, X_source=None, y_source=None, task=None) -> Conformal:
        self.strategy.use_source(model, X_source, y_source, task=task)
        self.source_model_ = self.strategy.source_model_
        self.is_adapted_ = False
        return self

    def _sigma(self, model: TransferStrategy, X: np.ndarray):
        if self.normalize is False:
            return model.predict(X), np.ones(len(X))
        try:
            mean, std = model.predict(X, return_std=True)
        except NotImplementedError:
            if self.normalize is True:
                raise
            return model.predict(X), np.ones(len(X))
        return mean, np.maximum(std, 1e-6 * max(float(np.median(std)), 1e-12))

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        n = len(X)
        n_cal = int(round(self.calibration_fraction * n))
        if n_cal < 5 or n - n_cal < 5:
            raise ValueError(f"{n} rows are too few for split-conformal calibration ({n_cal} calibration rows)")
        perm = np.random.default_rng([self.seed, 104729]).permutation(n)
        cal, fit = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
        inner = self.strategy.fresh()
        inner.adapt(X[fit], y[fit])
        mean, sigma = self._sigma(inner, X[cal])
        scores = np.sort(np.abs(y[cal] - mean) / sigma)
        self.target_ = {"model": inner, "scores": scores}

    def quantile(self, coverage: float) -> float:
        """The conformal score quantile: the ceil((n + 1) c)-th smallest calibration score."""
        if not 0 < coverage < 1:
            raise ValueError("coverage must be in (0, 1)")
        scores = self.target_["scores"]
        k = math.ceil((len(scores) + 1) * coverage)
        return float(scores[min(k, len(scores)) - 1]) if k <= len(scores) else float("inf")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.target_["model"].predict(X)

    def _predict_with_std(self, X: np.ndarray):
        mean, sigma = self._sigma(self.target_["model"], X)
        return mean, sigma * self.quantile(_Z68)

    def predict_interval(self, X, coverage: float = 0.95):
        """(lower, upper) bounds that cover a new row with probability >= ``coverage``."""
        self._require_adapted()
        mean, sigma = self._sigma(self.target_["model"], as_2d(X))
        half = sigma * self.quantile(coverage)
        return mean - half, mean + half


def interval_calibration(y_true, mean, std, levels=None) -> dict:
    """Calibration of Gaussian-shaped intervals ``mean +- z(c) * std``: the observed coverage at 68 % and
    95 %, and the miscalibration area (mean |observed - expected| coverage over ``levels``, default
    0.01..0.99; 0 = perfectly calibrated)."""
    from scipy.stats import norm

    y_true, mean, std = (np.asarray(a, dtype=np.float64) for a in (y_true, mean, std))
    z = np.abs(y_true - mean) / np.maximum(std, 1e-12)
    levels = np.linspace(0.01, 0.99, 99) if levels is None else np.asarray(levels)
    observed = np.array([np.mean(z <= norm.ppf(0.5 + c / 2)) for c in levels])
    return {
        "coverage_68": float(np.mean(z <= 1.0)),
        "coverage_95": float(np.mean(z <= norm.ppf(0.975))),
        "miscalibration_area": float(np.mean(np.abs(observed - levels))),
    }
