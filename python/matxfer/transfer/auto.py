"""``auto``: one default transfer recipe, every choice made by inner cross-validation on the training rows.

Steps (all on the rows passed to :func:`auto`; no other rows are ever looked at):

1. **Sources.** Every composition model of the library (or the ``sources`` given) sees the
   formulas once; a ridge model on its frozen features (and, for regression, a ridge difference
   model on descriptors + its prediction) is scored by exact leave-one-out error, as
   :func:`matxfer.transfer.scan` does. The ``n_sources`` best sources go on.
2. **Candidates.** On the best source: frozen features + ridge (logistic for classes), Delta with a
   ridge, gradient-boosting and MLP head (regression), the logit-offset Delta (a binary source
   classifier), FineTune; on the next sources the cheap ones (frozen-ridge, Delta-ridge). Beside
   them, the no-transfer baselines on ``baseline_preset`` descriptors: gradient boosting and a
   random forest at every setting of :data:`matxfer.transfer.BASELINE_GRIDS` (so their settings are
   chosen by the same inner CV).
3. **Inner CV.** Every candidate is fitted on each of ``inner_folds`` folds of the rows (KFold,
   stratified for classes) and scored on the held-out fold (MAE; ROC-AUC for classes). With
   ``groups`` (or conditioning columns, which make one material appear in several rows) the folds
   keep each group whole, so no material is scored by a model that saw it at another condition.
4. **Blend.** Greedy ensemble selection (Caruana et al. 2004) on those out-of-fold predictions:
   start from the best candidate, add (with replacement) the one that improves the inner score
   most, at most ``max_blend`` steps; a no-transfer baseline can win outright.
5. **Predictor.** The chosen candidates' fold models are kept: the prediction is the blend of each
   candidate's mean over its ``inner_folds`` fold models (a cross-validation ensemble; no refit).
   Classes: the blend's probabilities are Platt- (two classes) or temperature-scaled (more), fitted
   by log loss on its out-of-fold probabilities (``calibrate=True``).
6. **Intervals (regression).** CV+ (Barber et al., Ann. Statist. 2021): with out-of-fold residuals
   ``R_i`` of every training row and the fold models ``mu_-k``, the interval at coverage ``1 - a``
   runs from the ``floor(a (n + 1))``-th smallest of ``mu_-k(i)(x) - R_i`` to the
   ``ceil((1 - a)(n + 1))``-th smallest of ``mu_-k(i)(x) + R_i``. Every training row calibrates
   (not a 20 % split), so the finite-sample excess of the quantile is ``1/(n + 1)`` and no row is
   withheld from the models. Guarantee: coverage >= 1 - 2a in the worst case, about 1 - a in
   practice (Barber et al.).

**Conditions** (``conditions=``: temperature, doping, ... one or more columns per row) are appended to
every candidate's inputs: the sources never see them; frozen-feature and Delta heads, FineTune's new
zero-weight first-layer inputs and the tree baselines do (see ``TransferStrategy``'s ``n_conditions``).
Predicting then needs the same columns: ``model.predict(formulas, conditions=T)``.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._evaluation import check_groups, grouped_folds
from .base import TransferStrategy, default_target_config, finite_conditions

__all__ = ["auto", "AutoTransfer", "AUTO_CANDIDATES"]

#: strategies tried on the best source (first) and on the next ones (second)
AUTO_CANDIDATES = {
    "regression": (("frozen-ridge", "delta-ridge", "delta-gbm", "delta-mlp", "finetune"), ("frozen-ridge", "delta-ridge")),
    "classification": (("frozen-logistic", "delta-logit", "finetune"), ("frozen-logistic",)),
}
_TORCH = ("delta-mlp", "finetune", "delta-logit")  # candidates that train a network (global torch RNG)


def _is_formula_input(inputs) -> bool:
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in "OUS"
    if hasattr(inputs, "dtype") and getattr(inputs, "ndim", 1) == 2:
        return False
    return True


def _resolve_sources(sources, library, task: str) -> Dict[str, Tuple[Any, str]]:
    """name -> (torch MLP, preset)."""
    from ..library import cards, load

    out: Dict[str, Tuple[Any, str]] = {}
    if sources is None:
        found = cards(library)
        names = sorted(n for n, c in found.items() if c.get("modality") == "composition" and c.get("class", "MLP") == "MLP")
        sources = names
    items = sources.items() if isinstance(sources, Mapping) else [(s, s) for s in sources]
    for name, value in items:
        if isinstance(value, str):
            value = load(value, library)
        if isinstance(value, tuple):
            model, preset = value
        else:  # a LibraryModel
            model, preset = value.to_torch(), value.preset
        out[str(name)] = (model.eval(), str(preset))
    if not out:
        raise ValueError("auto needs at least one source model (library empty and no sources= given)")
    return out


def _hidden_features(model, X: np.ndarray) -> np.ndarray:
    from .frozen import FrozenFeatures

    frozen = FrozenFeatures()
    frozen.use_source(model)
    return frozen.transform(X)


def _rank_sources(srcs, desc, y, task, classes_n) -> List[Dict[str, Any]]:
    """Leave-one-out ridge error of every source on the given rows (scan's exact LOO)."""
    from ..library.scan import _ridge_fit
    from ..nn import predict

    rows = []
    target = y if task == "regression" else (y == y.max()).astype(np.float64) if classes_n == 2 else None
    for name, (model, preset) in srcs.items():
        X = desc(preset)
        if X.shape[1] != model.n_in:
            raise ValueError(f"source {name} takes {model.n_in} descriptors but preset {preset!r} gives {X.shape[1]}")
        H = _hidden_features(model, X)
        if target is None:  # multi-class: one-vs-rest LOO summed over classes
            loo = sum(_ridge_fit(H, (y == k).astype(np.float64))[-1] for k in range(classes_n))
        else:
            loo = _ridge_fit(H, target)[-1]
        entry = {"source": name, "preset": preset, "loo_frozen": float(loo)}
        if task == "regression":
            pred = predict(model, X)
            Hd = np.concatenate([np.nan_to_num(X), pred[:, None]], axis=1)
            entry["loo_delta"] = float(_ridge_fit(Hd, y - pred)[-1])
        entry["loo"] = min(entry["loo_frozen"], entry.get("loo_delta", math.inf))
        rows.append(entry)
    rows.sort(key=lambda r: (r["loo"], r["source"]))
    return rows


def _as_conditions(conditions, n: int) -> Optional[np.ndarray]:
    """[n, c] float conditioning columns (None stays None); refuses a wrong row count or a non-finite value."""
    if conditions is None:
        return None
    try:
        C = np.asarray(conditions, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"conditions must be numbers (e.g. temperatures in K): {err}") from None
    C = C[:, None] if C.ndim == 1 else C
    if C.ndim != 2 or len(C) != n or C.shape[1] < 1:
        raise ValueError(f"conditions must have one row per input ({n}) and at least one column, got shape {C.shape}")
    return finite_conditions(C)


def cv_plus_bounds(folds: np.ndarray, residuals: np.ndarray, fold_of: np.ndarray, coverage: float):
    """CV+ bounds (Barber et al. 2021) for ``m`` rows: ``folds`` [K, m] predictions of the K fold models,
    ``residuals`` [n] out-of-fold |residuals| of the calibration rows, ``fold_of`` [n] the fold model that
    did not see each. Lower: the floor(a (n + 1))-th smallest of mu_-k(i) - R_i; upper: the
    ceil((1 - a)(n + 1))-th smallest of mu_-k(i) + R_i (+-inf where n is too small). In blocks of 256 rows."""
    R = np.asarray(residuals, dtype=np.float64)
    n = len(R)
    alpha = 1.0 - coverage
    k_hi = math.ceil((1.0 - alpha) * (n + 1))
    k_lo = math.floor(alpha * (n + 1))
    m = folds.shape[1]
    lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
    for start in range(0, m, 256):
        mu = folds[:, start : start + 256][fold_of]  # [n, b]: the fold model that did not see row i
        if k_hi <= n:
            up = mu + R[:, None]
            hi[start : start + 256] = np.partition(up, k_hi - 1, axis=0)[k_hi - 1]
        if k_lo >= 1:
            down = mu - R[:, None]
            lo[start : start + 256] = np.partition(down, k_lo - 1, axis=0)[k_lo - 1]
    return lo, hi


def residual_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The ceil(coverage (n + 1))-th smallest |residual| (inf when n is too small): the half-width of the
    plain CV interval around the fold models' average."""
    R = np.abs(np.asarray(residuals, dtype=np.float64))
    k = math.ceil(coverage * (len(R) + 1))
    return np.inf if k > len(R) else float(np.partition(R, k - 1)[k - 1])


def _make(kind: str, model, seed: int, task: str, tc, output_floor, n_classes: int, n_conditions: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .baselines import TreeBaseline
    from .delta import Delta
    from .finetune import FineTune
    from .frozen import FrozenFeatures

    common = dict(seed=seed, task=task, target_config=tc, n_conditions=n_conditions)
    if task == "regression":
        common["output_floor"] = output_floor
    if kind.startswith("gbm[") or kind.startswith("rf["):
        name, rest = kind.split("[", 1)
        grid = {}
        for part in rest.rstrip("]").split(","):
            k, v = part.split("=")
            grid[k] = [v if not v.replace(".", "", 1).isdigit() else (float(v) if "." in v else int(v))]
        return TreeBaseline(model=name, grid=grid, inner_folds=0, seed=seed, task=task,
                            output_floor=output_floor if task == "regression" else None)
    s: TransferStrategy
    if kind == "frozen-ridge":
        s = FrozenFeatures(head="ridge", **common)
    elif kind == "frozen-logistic":  # fixed, moderate L2 on standardised features (no inner search: cheap)
        s = FrozenFeatures(head=make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)), **common)
    elif kind == "delta-ridge":
        s = Delta(head="ridge", **common)
    elif kind == "delta-gbm":  # 300 trees at learning rate 0.1 (the "gbm" head's 1000 at 0.05 cost 3x more)
        from .heads import gbm_regressor

        s = Delta(head=gbm_regressor(seed, max_iter=300, learning_rate=0.1), **common)
    elif kind in ("delta-mlp", "delta-logit"):
        s = Delta(head="mlp", **common)
    elif kind == "finetune":
        s = FineTune(**common)
    else:
        raise ValueError(f"unknown auto candidate {kind!r}")
    return s.use_source(model)


def _baseline_kinds(names: Sequence[str]) -> List[str]:
    from itertools import product

    from .baselines import BASELINE_GRIDS

    out = []
    for b in names:
        if b not in BASELINE_GRIDS:
            raise ValueError(f"unknown baseline {b!r}; choose from {sorted(BASELINE_GRIDS)}")
        grid = BASELINE_GRIDS[b]
        for values in product(*grid.values()):
            out.append(f"{b}[" + ",".join(f"{k}={v}" for k, v in zip(grid, values)) + "]")
    return out


_PROBA_EPS = 1e-7


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y)), np.asarray(y, dtype=np.int64)], _PROBA_EPS, 1.0)
    return float(-np.mean(np.log(p)))


def fit_probability_calibration(proba: np.ndarray, y: np.ndarray) -> Dict[str, Any]:
    """Platt scaling (two classes: ``sigmoid(a * logit(p) + b)``, ``a > 0``) or temperature scaling (K
    classes: ``softmax(log(p) / t)``) of probabilities ``proba`` [n, K] for class indices ``y``, fitted by
    log loss (L-BFGS-B). Both are monotone: the order of the rows by a class's probability is kept."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    y = np.asarray(y, dtype=np.int64)
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), _PROBA_EPS, 1.0))
    if logp.shape[1] == 2:
        z, pos = logp[:, 1] - logp[:, 0], y == 1

        def nll2(w):
            s = w[0] * z + w[1]
            return float(np.mean(np.where(pos, np.logaddexp(0.0, -s), np.logaddexp(0.0, s))))

        w = minimize(nll2, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(1e-3, 1e3), (-50.0, 50.0)]).x
        return {"kind": "platt", "a": float(w[0]), "b": float(w[1])}

    def nllk(w):
        return float(-np.mean(log_softmax(logp / w[0], axis=1)[np.arange(len(y)), y]))

    t = minimize(nllk, np.array([1.0]), method="L-BFGS-B", bounds=[(1e-2, 1e2)]).x[0]
    return {"kind": "temperature", "t": float(t)}


def apply_probability_calibration(proba: np.ndarray, cal: Mapping[str, Any]) -> np.ndarray:
    """Probabilities rescaled by :func:`fit_probability_calibration`'s result."""
    from scipy.special import expit, softmax

    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), _PROBA_EPS, 1.0))
    if cal["kind"] == "platt":
        p1 = expit(cal["a"] * (logp[:, 1] - logp[:, 0]) + cal["b"])
        return np.stack([1.0 - p1, p1], axis=1)
    if cal["kind"] == "temperature":
        return softmax(logp / cal["t"], axis=1)
    raise ValueError(f"unknown probability calibration {cal['kind']!r}")


def _score(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Inner score, lower is better: MAE, or 1 - ROC-AUC for classes."""
    if task == "regression":
        return float(np.mean(np.abs(pred - y)))
    from sklearn.metrics import roc_auc_score

    if pred.shape[1] == 2:
        return 1.0 - float(roc_auc_score(y, pred[:, 1]))
    return 1.0 - float(roc_auc_score(y, pred, multi_class="ovr", average="macro", labels=np.arange(pred.shape[1])))


class AutoTransfer(TransferStrategy):
    """What :func:`auto` returns: a fitted blend of cross-validation ensembles with CV+ intervals.

    ``predict(inputs)`` takes formulas (or, when :func:`auto` was given descriptors, an array of the
    same preset); ``predict_interval(inputs, coverage)`` gives CV+ bounds (regression);
    ``predict_proba`` class probabilities (classification); ``report`` what was chosen and every
    candidate's inner-CV score (``report_table()`` as a DataFrame). Saves and loads with
    :func:`matxfer.transfer.save_strategy` / :func:`load_strategy`.
    """

    name = "auto"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.members_: List[Dict[str, Any]] = []
        self.report: Dict[str, Any] = {}
        self.input_preset: Optional[str] = None
        self.cal_residuals_: Optional[np.ndarray] = None
        self.cal_fold_: Optional[np.ndarray] = None
        self.calibration_: Optional[Dict[str, Any]] = None  # classification: see fit_probability_calibration

    def pretrain(self, X_source=None, y_source=None):
        raise TypeError("AutoTransfer is built by matxfer.transfer.auto(...), which picks its own sources")

    def use_source(self, model=None, X_source=None, y_source=None, task=None):
        raise TypeError("AutoTransfer is built by matxfer.transfer.auto(...), which picks its own sources")

    def fresh(self):
        raise TypeError("AutoTransfer is fitted by matxfer.transfer.auto(...); call auto() again on new rows")

    # -- inputs -------------------------------------------------------------------------------------
    def _descriptors(self, inputs, conditions=None) -> Dict[str, np.ndarray]:
        presets = sorted({m["preset"] for m in self.members_})
        if _is_formula_input(inputs):
            from ..featurize import featurize

            formulas = list(inputs)
            out = {p: featurize(formulas, p, errors="raise", dtype=np.float32).values.astype(np.float64) for p in presets}
            n = len(formulas)
        else:
            X = np.asarray(inputs, dtype=np.float64)
            if X.ndim != 2:
                raise ValueError(f"descriptors must be a 2-D array, got shape {X.shape}")
            out, n = {p: X for p in presets}, len(X)
        if not self.n_conditions:
            if conditions is not None:
                raise ValueError("this model was fitted without conditions; do not pass conditions=")
            return out
        if conditions is None:
            raise ValueError(f"this model was fitted with {self.n_conditions} condition column(s): pass conditions=")
        C = _as_conditions(conditions, n)
        assert C is not None  # conditions is not None here
        if C.shape[1] != self.n_conditions:
            raise ValueError(f"this model takes {self.n_conditions} condition column(s), got {C.shape[1]}")
        return {p: np.hstack([X, C]) for p, X in out.items()}

    def fold_predictions(self, inputs, conditions=None) -> np.ndarray:
        """[K, n] (regression) or [K, n, n_classes]: the blend of the k-th fold models of every member."""
        self._require_adapted()
        D = self._descriptors(inputs, conditions)
        total: Any = None
        for m in self.members_:
            X = D[m["preset"]]
            if self.is_classifier:
                per = np.stack([s.predict_proba(X) for s in m["folds"]])
            else:
                per = np.stack([s.predict(X) for s in m["folds"]])
            total = m["weight"] * per if total is None else total + m["weight"] * per
        return total

    def predict(self, inputs, return_std: bool = False, conditions=None):
        folds = self.fold_predictions(inputs, conditions)
        if self.is_classifier:
            if return_std:
                raise ValueError("return_std is for regression; a classifier's uncertainty is predict_proba")
            return np.asarray(self.classes_ or [])[self._calibrated(folds.mean(axis=0)).argmax(1)]
        mean = self._floor(folds.mean(axis=0))
        if not return_std:
            return mean
        lo, hi = self._cv_plus(folds, 0.6826894921370859)
        return mean, (hi - lo) / 2

    def predict_proba(self, inputs, conditions=None) -> np.ndarray:
        if not self.is_classifier:
            raise ValueError("predict_proba is for classification; this AutoTransfer is a regressor")
        return self._calibrated(self.fold_predictions(inputs, conditions).mean(axis=0))

    def _calibrated(self, proba: np.ndarray) -> np.ndarray:
        cal = getattr(self, "calibration_", None)  # None: fitted with calibrate=False, or saved before it existed
        return proba if cal is None else apply_probability_calibration(proba, cal)

    def predict_interval(self, inputs, coverage: float = 0.95, conditions=None, method: str = "cv+"):
        """Interval (lower, upper) at ``coverage`` for every row (regression).

        ``method="cv+"`` (default): CV+ (Barber et al. 2021), centred on each inner fold model in turn;
        coverage >= 1 - 2a guaranteed, and in practice a little above nominal (measured at 68 %: 70.2-73.0 %
        on expt_gap and UCSB, benches/RESULTS.md). ``method="cv"``: the prediction (the fold models'
        average) +- the ceil((1 - a)(n + 1))-th smallest out-of-fold |residual|: narrower and, measured on
        the same targets, 68.3-70.3 % at 68 % and 94.1-95.0 % at 95 %, but without CV+'s finite-sample
        guarantee (the residuals come from single fold models, the average is more accurate)."""
        if self.is_classifier:
            raise ValueError("predict_interval is for regression; use predict_proba for classes")
        if not 0 < coverage < 1:
            raise ValueError("coverage must be in (0, 1)")
        if method not in ("cv+", "cv"):
            raise ValueError(f"method must be 'cv+' or 'cv', not {method!r}")
        folds = self.fold_predictions(inputs, conditions)
        if method == "cv+":
            return self._cv_plus(folds, coverage)
        R = self.cal_residuals_
        if R is None:
            raise RuntimeError("internal: an AutoTransfer regressor without calibration residuals")
        half = residual_quantile(R, coverage)
        mean = folds.mean(axis=0)
        return self._floor(mean - half), self._floor(mean + half)

    def _floor(self, v: np.ndarray) -> np.ndarray:
        return v if self.output_floor is None else np.maximum(v, self.output_floor)

    def _cv_plus(self, folds: np.ndarray, coverage: float):
        R, fold_of = self.cal_residuals_, self.cal_fold_
        if R is None or fold_of is None:
            raise RuntimeError("internal: an AutoTransfer regressor without calibration residuals")
        lo, hi = cv_plus_bounds(folds, R, fold_of, coverage)
        return self._floor(lo), self._floor(hi)

    def report_table(self):
        """Every candidate with its inner-CV score (mean and spread over the folds) and blend weight."""
        import pandas as pd

        return pd.DataFrame(self.report["candidates"]).sort_values("inner_score").reset_index(drop=True)

    def _params(self):
        return {"members": [(m["name"], round(m["weight"], 3)) for m in self.members_]}


def auto(
    inputs,
    y,
    task: Optional[str] = None,
    library=None,
    sources=None,
    preset: Optional[str] = None,
    baseline_preset: str = "magpie_full",
    baselines: Sequence[str] = ("gbm", "rf"),
    n_sources: int = 3,
    strategies: Optional[Sequence[str]] = None,
    next_strategies: Optional[Sequence[str]] = None,
    inner_folds: int = 5,
    max_blend: int = 5,
    output_floor: Optional[float] = None,
    target_config=None,
    seed: int = 0,
    n_jobs: int = 2,
    verbose: bool = False,
    conditions=None,
    groups=None,
    calibrate: bool = True,
) -> AutoTransfer:
    """Choose source, strategy and no-transfer baseline by inner CV on ``(inputs, y)`` and return the
    fitted :class:`AutoTransfer` (see the module docstring for the recipe).

    inputs: formulas (anything ``matxfer.featurize`` takes), or a descriptor array of ``preset``
    (then only sources of that preset are tried, and the baselines use the same array).
    y: values (regression) or class labels (``task="classification"``, inferred for bool/str labels).
    library / sources: where the candidate sources come from (default: every composition MLP of the
    library); ``sources`` may be names, ``LibraryModel`` objects or ``{name: (torch MLP, preset)}``.
    strategies / next_strategies: candidate strategies on the best source / the next ``n_sources - 1``
    (default :data:`AUTO_CANDIDATES`); baselines: "gbm" and/or "rf" (every grid setting is a candidate).
    output_floor: lower bound of predictions (e.g. 0 for band gaps). target_config: training budget
    of the network candidates (default ``default_target_config(epochs=100, patience=15)``).
    n_jobs: worker threads (each single-threaded; results are identical for any ``n_jobs``).
    conditions: conditioning columns per row ([n] or [n, c]: temperature, doping, ...), given to every
    candidate after its descriptors (the sources never see them); ``predict`` then needs them too.
    groups: a label per row; inner folds keep each group whole. Default: none, except with
    ``conditions``, where the rows of one reduced composition (formula input) or of identical
    descriptors form a group, so a material measured at several temperatures is never in a training
    and a held-out fold at once.
    calibrate (classification): rescale the blend's probabilities by Platt scaling (two classes) or a
    temperature (more classes) fitted by log loss on its out-of-fold probabilities of the training rows.
    The inner score (ROC-AUC) ranks and blends candidates without regard to how sure they are, so a
    blend of many deep trees can rank well and be over-confident; the rescaling is monotone (two classes:
    ROC-AUC unchanged) and ``report["calibration"]`` gives the inner log loss before and after.
    """
    import torch
    from sklearn.model_selection import KFold, StratifiedKFold
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    formula_input = _is_formula_input(inputs)
    if formula_input:
        formulas = list(inputs)
        n = len(formulas)
    else:
        if preset is None:
            raise ValueError("descriptor input needs preset=... (the matxfer preset that produced the columns)")
        X_given = np.asarray(inputs, dtype=np.float64)
        if X_given.ndim != 2:
            raise ValueError(f"descriptors must be a 2-D array, got shape {X_given.shape}")
        n = len(X_given)
        baseline_preset = preset
    y_raw = np.asarray(y)
    if y_raw.shape != (n,):
        raise ValueError(f"{n} inputs but y has shape {y_raw.shape}")
    if task is None:
        task = "classification" if y_raw.dtype.kind in "bOUS" else "regression"
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', not {task!r}")
    if task == "classification":
        from .tasks import encode_labels

        yi, classes, _ = encode_labels(y_raw, n)
        y_fit = yi.astype(np.int64)
        n_classes = len(classes)
    else:
        y_fit = np.asarray(y_raw, dtype=np.float64)
        if not np.isfinite(y_fit).all():
            raise ValueError(f"target of row {int(np.flatnonzero(~np.isfinite(y_fit))[0])} is not finite")
        classes, n_classes = None, 0
    if n < 2 * inner_folds:
        raise ValueError(f"{n} rows are too few for {inner_folds}-fold inner CV")
    C = _as_conditions(conditions, n)
    n_cond = 0 if C is None else C.shape[1]
    if groups is not None:
        groups = check_groups(groups, n)
        group_note = "groups given"
    elif C is not None:
        if formula_input:
            from .._evaluation import composition_keys

            groups = composition_keys(formulas)
            group_note = "reduced composition (conditions given)"
        else:
            groups = np.unique(X_given, axis=0, return_inverse=True)[1].reshape(-1)
            group_note = "identical descriptor rows (conditions given)"
    else:
        group_note = None

    first, rest = AUTO_CANDIDATES[task]
    first = tuple(first if strategies is None else strategies)
    rest = tuple(rest if next_strategies is None else next_strategies)
    known = set(AUTO_CANDIDATES[task][0]) | set(AUTO_CANDIDATES[task][1])
    unknown = sorted(set(first + rest) - known)
    if unknown:
        raise ValueError(f"unknown auto strategies {unknown} for {task}; choose from {sorted(known)}")
    _baseline_kinds(baselines)  # checks the names

    cache: Dict[str, np.ndarray] = {}

    def desc(p: str) -> np.ndarray:
        if not formula_input:
            if p != preset:
                raise ValueError(f"descriptor input is {preset!r}; a source needs {p!r}")
            return X_given
        if p not in cache:
            from ..featurize import featurize

            cache[p] = featurize(formulas, p, errors="raise", dtype=np.float32).values.astype(np.float64)
        return cache[p]

    with_cond: Dict[str, np.ndarray] = {}

    def inputs_of(p: str) -> np.ndarray:
        """A candidate's inputs: the preset's descriptors, then the conditioning columns."""
        if C is None:
            return desc(p)
        if p not in with_cond:
            with_cond[p] = np.hstack([desc(p), C])
        return with_cond[p]

    srcs = _resolve_sources(sources, library, task)
    if not formula_input:
        srcs = {k: v for k, v in srcs.items() if v[1] == preset}
        if not srcs and verbose:
            print(f"auto: no source of preset {preset!r}; only the baselines compete", flush=True)
    tc = target_config or default_target_config(epochs=100, patience=15)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            ranking = _rank_sources(srcs, desc, y_fit.astype(np.float64), task, n_classes) if srcs else []
            chosen_sources = [r["source"] for r in ranking[: max(0, int(n_sources))]]
            if verbose:
                print(f"auto: {len(ranking)} sources ranked in {time.perf_counter() - t0:.0f} s; top: {chosen_sources}", flush=True)
            cands: List[Tuple[str, str, Optional[str]]] = []  # (label, kind, source)
            for i, s in enumerate(chosen_sources):
                model = srcs[s][0]
                for kind in first if i == 0 else rest:
                    if kind == "delta-logit" and (getattr(model, "task", "regression") != "classification" or n_classes != 2):
                        continue
                    cands.append((f"{kind} @ {s}", kind, s))
            cands += [(k, k, None) for k in _baseline_kinds(baselines)]
            if groups is not None:
                folds = grouped_folds(groups, y_fit, inner_folds, seed, task == "classification")
            else:
                splitter = (StratifiedKFold if task == "classification" else KFold)(inner_folds, shuffle=True, random_state=seed)
                folds = list(splitter.split(np.zeros(n), y_fit) if task == "classification" else splitter.split(np.zeros(n)))
            fold_of = np.empty(n, dtype=np.int64)
            for k, (_, test) in enumerate(folds):
                fold_of[test] = k
            lock = threading.Lock()

            def job(ci: int, k: int):
                label, kind, s = cands[ci]
                model, p = (srcs[s][0], srcs[s][1]) if s is not None else (None, baseline_preset)
                X = inputs_of(p)
                train, test = folds[k]
                strat = _make(kind, model, seed, task, tc, output_floor, n_classes, n_cond if model is not None else 0)
                if kind in _TORCH:
                    with lock:
                        strat.adapt(X[train], y_fit[train])
                else:
                    strat.adapt(X[train], y_fit[train])
                pred = strat.predict_proba(X[test]) if task == "classification" else strat.predict(X[test])
                return ci, k, strat, pred

            for p in {srcs[s][1] for s in chosen_sources} | ({baseline_preset} if baselines else set()):
                inputs_of(p)  # featurize on this thread before the pool starts
            oof = [np.zeros((n, n_classes)) if task == "classification" else np.zeros(n) for _ in cands]
            fitted: List[List[Any]] = [[None] * inner_folds for _ in cands]
            seconds = np.zeros(len(cands))
            jobs = [(ci, k) for ci in range(len(cands)) for k in range(inner_folds)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(n_jobs))) as pool:
                def timed(ci, k):
                    t = time.perf_counter()
                    out = job(ci, k)
                    return (*out, time.perf_counter() - t)

                for ci, k, strat, pred, sec in pool.map(lambda a: timed(*a), jobs):
                    oof[ci][folds[k][1]] = pred
                    fitted[ci][k] = strat
                    seconds[ci] += sec
    finally:
        torch.set_num_threads(old_threads)

    per_fold = [[_score(task, y_fit[test], o[test]) for _, test in folds] for o in oof]
    scores = [float(np.mean(f)) for f in per_fold]
    # greedy ensemble selection on the out-of-fold predictions (with replacement)
    best = int(np.argmin(scores))
    counts = np.zeros(len(cands), dtype=np.int64)
    counts[best] = 1
    blend, blend_score = oof[best].copy(), scores[best]
    for step in range(2, max(1, int(max_blend)) + 1):
        trial = [float(np.mean([_score(task, y_fit[test], ((step - 1) * blend[test] + o[test]) / step) for _, test in folds]))
                 for o in oof]
        j = int(np.argmin(trial))
        if trial[j] >= blend_score - 1e-12:
            break
        counts[j] += 1
        blend = ((step - 1) * blend + oof[j]) / step
        blend_score = trial[j]
    weights = counts / counts.sum()

    est = AutoTransfer(seed=seed, task=task, output_floor=output_floor if task == "regression" else None)
    est.task_ = task
    est.classes_ = classes
    est.input_preset = None if formula_input else preset
    est.n_conditions = n_cond
    est.members_ = [{"name": cands[i][0], "kind": cands[i][1], "source": cands[i][2],
                     "preset": srcs[str(cands[i][2])][1] if cands[i][2] is not None else baseline_preset,
                     "weight": float(weights[i]), "folds": fitted[i]} for i in np.flatnonzero(counts)]
    if task == "regression":
        est.cal_residuals_ = np.abs(y_fit - blend)
        est.cal_fold_ = fold_of
    calibration_report = None
    if task == "classification" and calibrate:
        est.calibration_ = fit_probability_calibration(blend, y_fit)
        calibration_report = {**est.calibration_, "inner_log_loss_before": _log_loss(blend, y_fit),
                              "inner_log_loss_after": _log_loss(apply_probability_calibration(blend, est.calibration_), y_fit)}
    est.is_adapted_ = True
    metric = "MAE" if task == "regression" else "1 - ROC-AUC"
    est.report = {
        "task": task, "n_rows": int(n), "inner_folds": int(inner_folds), "metric": metric, "seed": int(seed),
        "sources_ranked": ranking, "sources_used": chosen_sources,
        "candidates": [{"candidate": c[0], "kind": c[1], "source": c[2], "inner_score": scores[i],
                        "inner_score_std": float(np.std(per_fold[i])), "weight": float(weights[i]),
                        "transfer": c[2] is not None, "seconds": float(seconds[i])} for i, c in enumerate(cands)],
        "chosen": [(m["name"], m["weight"]) for m in est.members_],
        "blend_inner_score": float(blend_score),
        "best_single": cands[best][0], "best_single_score": scores[best],
        "best_baseline_score": min([s for s, c in zip(scores, cands) if c[2] is None], default=float("nan")),
        "intervals": "CV+ over the inner folds (every training row calibrates)" if task == "regression" else None,
        "conditions": n_cond, "inner_groups": group_note, "calibration": calibration_report,
        "seconds": time.perf_counter() - t0,
    }
    if verbose:
        print(f"auto: chose {est.report['chosen']} (inner {metric} {blend_score:.4f}; best single "
              f"{cands[best][0]} {scores[best]:.4f}; best baseline {est.report['best_baseline_score']:.4f}) "
              f"in {est.report['seconds']:.0f} s", flush=True)
    return est
