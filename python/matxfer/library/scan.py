"""Shotgun scan: try every library model as a source for a target, rank them honestly.

For each source model the target formulas are featurized with the model's preset and passed
through the network once (the source is fixed, so this sees no target label). Each strategy then
fits a ridge model per cross-validation fold:

- ``"frozen-ridge"``: ridge on the source's hidden activations and its prediction (frozen features);
- ``"delta"``: ridge on the descriptors and the source prediction, fitted to ``y - prediction``
  (a linear difference model; with the prediction as an input it can also rescale it).

Selection never looks at test rows: inside each training fold every candidate is scored by the
ridge's leave-one-out error on the training rows (computed exactly by ``RidgeCV``), the best is
chosen, and only then evaluated on the fold's test rows ("scan-selected" in the table). The table
ranks every candidate by outer-CV error next to baselines without any source: gradient boosting
on descriptors (``HistGradientBoosting``; learning rate, leaf count and tree count, 300 or 1000, chosen by
inner 3-fold CV on each fold's training rows: the model a user would otherwise pick), ridge on descriptors, and
optionally a random forest (settings by inner CV as well) and the from-scratch network (needs torch).

A target given as crystal structures (a :class:`~matxfer.structures.StructureBatch`, or
``modality="structure"`` with anything :func:`matxfer.structures.as_batch` takes) is scanned
against the library's structure sources instead: their features are the pooled crystal embedding
and the prediction (needs torch), ``"delta"`` uses the composition descriptors of each
structure's formula, and the baselines see those same composition descriptors.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["scan", "ScanResult", "STRATEGIES"]

STRATEGIES = ("frozen-ridge", "delta")
BASELINES = ("gbm", "rf", "ridge", "scratch")
_ALPHAS = np.logspace(-3, 5, 17)  # ridge penalties tried (on standardised features)


@dataclasses.dataclass
class ScanResult:
    """``table``: one row per candidate and baseline, best first (columns: name, strategy, kind,
    score columns, rank); ``selected``: per outer fold, the candidate chosen on the training rows;
    ``predictions``: out-of-fold predictions of the scan-selected model; ``seconds``."""

    table: Any
    selected: List[str]
    predictions: np.ndarray
    metric: str
    seconds: float
    #: per candidate: name, strategy, ``loo`` (inner leave-one-out MSE per outer fold, on its
    #: training rows) and ``oof`` (out-of-fold predictions), to study other selection rules
    candidates: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    def plot(self, path: str, top: int = 25, title: str = "") -> str:
        """Bar chart of the best ``top`` candidates and every baseline; returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.table
        rows = t[t.kind == "source"].head(top)
        rows = rows._append(t[t.kind != "source"]) if hasattr(rows, "_append") else rows
        rows = rows.sort_values(self.metric, ascending=self.metric != "roc_auc")
        colors = {"source": "#4c72b0", "selected": "#dd8452", "baseline": "#8c8c8c"}
        fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
        labels = [f"{n} [{s}]" if k == "source" else n for n, s, k in zip(rows.name, rows.strategy, rows.kind)]
        ax.barh(range(len(rows)), rows[self.metric], color=[colors[k] for k in rows.kind])
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{self.metric} (outer CV)")
        ax.set_title(title or "shotgun scan")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _folds(n: int, cv: Union[int, Iterable[Tuple[np.ndarray, np.ndarray]]], seed: int):
    if isinstance(cv, int):
        from sklearn.model_selection import KFold

        return list(KFold(n_splits=cv, shuffle=True, random_state=seed).split(np.zeros(n)))
    return [(np.asarray(a), np.asarray(b)) for a, b in cv]


def _ridge_fit(H: np.ndarray, y: np.ndarray, cross: Optional[np.ndarray] = None):
    """Ridge on standardised features with the penalty chosen by exact leave-one-out error.

    One eigendecomposition of the smaller Gram matrix (``Z^T Z`` or ``Z Z^T``) serves every
    penalty: with ``Z = U S V^T``, the fitted values are ``U diag(s^2 / (s^2 + a)) U^T y`` and the
    leave-one-out residual is ``(y_i - fit_i) / (1 - h_ii)`` (``h`` the hat matrix, plus ``1/n``
    for the intercept). ``cross``: ``H^T H`` if the caller has it (the scan gets each fold's from
    the whole set's minus the test rows'); ``Z^T Z`` then follows without a pass over the rows.
    Returns (coef, intercept, mean, scale, lo, hi, loo_mse)."""
    n = len(y)
    mean = H.mean(axis=0)
    scale = H.std(axis=0)
    scale[scale < 1e-12] = 1.0
    Z = (H - mean) / scale
    lo, hi = Z.min(axis=0), Z.max(axis=0)
    y_mean = float(y.mean())
    yc = y - y_mean
    if Z.shape[0] >= Z.shape[1]:
        if cross is None:
            gram = Z.T @ Z
        else:
            gram = (cross - n * np.outer(mean, mean)) / np.outer(scale, scale)
        evals, V = np.linalg.eigh(gram)
        keep = evals > 1e-10 * max(evals.max(), 1e-300)
        evals, V = evals[keep], V[:, keep]
        s = np.sqrt(evals)
        U = (Z @ V) / s
    else:
        evals, U = np.linalg.eigh(Z @ Z.T)
        keep = evals > 1e-10 * max(evals.max(), 1e-300)
        evals, U = evals[keep], U[:, keep]
        s = np.sqrt(evals)
        V = (Z.T @ U) / s
    Uty = U.T @ yc
    # every penalty at once: two (n x p) @ (p x n_alphas) products instead of two passes over U per penalty
    shrink = evals[:, None] / (evals[:, None] + _ALPHAS[None, :])
    fitted = U @ (shrink * Uty[:, None])
    h = np.square(U, out=U) @ shrink + 1.0 / n
    loos = np.mean(((yc[:, None] - fitted) / np.maximum(1.0 - h, 1e-12)) ** 2, axis=0)
    k = int(np.argmin(loos))  # the first of equal minima, as the sequential search did
    loo, alpha = float(loos[k]), float(_ALPHAS[k])
    coef = V @ ((s / (evals + alpha)) * Uty)
    return coef, y_mean, mean, scale, lo, hi, loo


def _ridge_predict(params, H):
    coef, intercept, mean, scale, lo, hi, _ = params
    # clip to the training range: a descriptor far outside it (a near-constant column) must not
    # send a linear model's prediction away
    return np.clip((H - mean) / scale, lo, hi) @ coef + intercept


def _score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    if metric == "mae":
        return float(np.mean(np.abs(pred - y)))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, pred))


def _candidate_features(model, X_desc: np.ndarray, strategy: str, structures: Any = None):
    if structures is None:
        H = model.transform(X_desc, n_threads=1).astype(np.float64)  # the scan's own pool runs the models in parallel
    else:  # structure source: pooled crystal embedding and the prediction (the MLP's transform ends with it too)
        H = np.concatenate([model.transform(structures, n_threads=1).astype(np.float64), model.predict(structures, n_threads=1)[:, None]],
                           axis=1)
    source_pred = H[:, -1].copy()
    if strategy == "frozen-ridge":
        return H, None
    # delta: descriptors plus the source prediction, target minus prediction
    return np.concatenate([np.nan_to_num(X_desc.astype(np.float64)), source_pred[:, None]], axis=1), source_pred


def _formulas_of(batch) -> List[str]:
    """One formula string per structure (element counts in the cell), for composition descriptors."""
    from ..featurize import _symbols

    symbols = _symbols()
    out = []
    for k in range(len(batch)):
        z, counts = np.unique(batch.numbers[batch.ptr[k] : batch.ptr[k + 1]], return_counts=True)
        out.append("".join(f"{symbols[int(a) - 1]}{int(c)}" for a, c in zip(z, counts)))
    return out


def scan(
    target: Any,
    y,
    library=None,
    strategies: Sequence[str] = STRATEGIES,
    cv: Union[int, Iterable[Tuple[np.ndarray, np.ndarray]]] = 5,
    n_jobs: int = 2,
    models: Optional[Sequence[str]] = None,
    task: str = "regression",
    baselines: Sequence[str] = ("gbm", "ridge"),
    baseline_preset: str = "magpie_full",
    seed: int = 18012019,
    output_floor: Optional[float] = None,
    plot: Optional[str] = None,
    progress: bool = False,
    select_top: int = 1,
    modality: Optional[str] = None,
) -> ScanResult:
    """Rank library models as sources for ``(target, y)``.

    target: formulas (anything ``matxfer.featurize`` takes); y: values (regression) or 0/1 labels
    (``task="classification"``, ranked by ROC AUC). ``models``: names to try (default: every
    composition model found in ``library``). ``cv``: folds (int, matbench's shuffled KFold seed by
    default) or explicit ``(train_idx, test_idx)`` pairs. ``baselines``: any of "gbm", "rf" (both with
    settings chosen by inner CV on each training fold), "ridge", "scratch" (the from-scratch MLP; needs torch). ``plot``: a PNG path for the bar chart.
    ``select_top``: the "scan-selected" model averages the predictions of the ``select_top``
    candidates with the lowest inner leave-one-out error on each fold's training rows (1: the best one).
    ``modality``: ``"composition"`` or ``"structure"`` (default: ``"structure"`` for a
    ``StructureBatch``, else ``"composition"``); it picks which library models are candidates.
    """
    if int(select_top) < 1:
        raise ValueError(f"select_top must be >= 1, got {select_top!r}")
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ..featurize import featurize
    from ..structures import StructureBatch, as_batch
    from . import cards, load

    t0 = time.perf_counter()
    if modality is None:
        modality = "structure" if isinstance(target, StructureBatch) else "composition"
    if modality not in ("composition", "structure"):
        raise ValueError(f"modality must be 'composition' or 'structure', got {modality!r}")
    structures = as_batch(target) if modality == "structure" else None
    formulas = _formulas_of(structures) if structures is not None else list(target)
    y = np.asarray(y, dtype=np.float64)
    if len(y) != len(formulas):
        raise ValueError(f"{len(formulas)} {'structures' if structures is not None else 'formulas'} but {len(y)} targets")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {BASELINES}")
    metric = "mae" if task == "regression" else "roc_auc"
    folds = _folds(len(y), cv, seed)
    found = cards(library)
    names = sorted(n for n, c in found.items() if c.get("modality") == modality) if models is None else list(models)
    if not names:
        raise ValueError(f"no {modality} models in the library: build some with `matxfer library build`")
    wrong = [n for n in names if n in found and found[n].get("modality") != modality]
    if wrong:
        raise ValueError(f"models {wrong[:3]} are not {modality} models; a {modality} target needs {modality} sources")
    descriptors: Dict[str, np.ndarray] = {}

    def desc(preset: str) -> np.ndarray:
        if preset not in descriptors:
            descriptors[preset] = featurize(formulas, preset, errors="nan", dtype=np.float32).values
        return descriptors[preset]

    def preset_of(name: str) -> str:
        return baseline_preset if structures is not None else (found[name]["descriptor"]["preset"] if name in found else load(name, library).preset)

    for name in names:  # featurize once per preset, on this thread
        desc(preset_of(name))

    # folds whose training rows are exactly the rows outside the test rows
    complements = []
    for train, test in folds:
        seen = np.zeros(len(y), dtype=np.int64)
        np.add.at(seen, train, 1)
        np.add.at(seen, test, 1)
        complements.append(bool((seen == 1).all()))
    floor = (lambda p: np.maximum(p, output_floor)) if output_floor is not None else (lambda p: p)

    def evaluate(name: str):
        rows = []
        # (BLAS is limited to one thread around the pool, below)
        model = load(name, library)
        X_desc = desc(preset_of(name))
        for strategy in strategies:
            H, offset = _candidate_features(model, X_desc, strategy, structures)
            oof = np.zeros(len(y))
            loo = []
            # one cross-product of all rows; each fold's is that minus its test rows' (columns
            # centred first, so the subtraction loses no digits)
            H -= H.mean(axis=0)
            cross = H.T @ H
            for f, (train, test) in enumerate(folds):
                target_train = y[train] - (offset[train] if offset is not None else 0.0)
                Ht = H[test]
                use = complements[f] and len(test) < len(train) and len(train) >= H.shape[1]
                params = _ridge_fit(H[train], target_train, cross - Ht.T @ Ht if use else None)
                pred = _ridge_predict(params, H[test]) + (offset[test] if offset is not None else 0.0)
                oof[test] = floor(pred)
                loo.append(params[-1])
            rows.append({"name": name, "strategy": strategy, "kind": "source", "loo": loo, "oof": oof,
                         "property": model.card["property"]["name"], "preset": model.preset})
        return rows

    desc(baseline_preset) if baselines else None
    results: List[Dict[str, Any]] = []
    # One process-wide limit of one BLAS/OpenMP thread per job, set here around the pool: limits
    # entered and left in the worker threads themselves would race on the global setting.
    with threadpool_limits(limits=1), concurrent.futures.ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        # the baselines (gradient boosting is the longest single job) run in the same pool, first
        baseline_jobs = {b: pool.submit(_baseline, b, formulas, y, folds, task, baseline_preset, desc, seed) for b in baselines}
        for k, rows in enumerate(pool.map(evaluate, names)):
            results.extend(rows)
            if progress:
                print(f"scan [{k + 1}/{len(names)}] {rows[0]['name']}", flush=True)
        baseline_oof = {b: job.result() for b, job in baseline_jobs.items()}

    # nested selection: per fold, the select_top candidates with the lowest leave-one-out error on
    # the training rows (their predictions averaged when select_top > 1)
    selected, sel_oof = [], np.zeros(len(y))
    for f, (_, test) in enumerate(folds):
        chosen = select_by_inner_loo(results, f, select_top)
        selected.append(" + ".join(f"{r['name']} [{r['strategy']}]" for r in chosen))
        sel_oof[test] = np.mean([r["oof"][test] for r in chosen], axis=0)

    table_rows = []
    for r in results:
        per_fold = [_score(metric, y[test], r["oof"][test]) for _, test in folds]
        table_rows.append({"name": r["name"], "strategy": r["strategy"], "kind": "source", "property": r["property"],
                           "preset": r["preset"], metric: float(np.mean(per_fold)), f"{metric}_std": float(np.std(per_fold))})
    per_fold = [_score(metric, y[test], sel_oof[test]) for _, test in folds]
    label = "scan-selected (inner LOO on training folds)" if select_top == 1 else f"scan-selected: mean of the top {select_top} by inner LOO"
    table_rows.append({"name": label, "strategy": "nested", "kind": "selected",
                       metric: float(np.mean(per_fold)), f"{metric}_std": float(np.std(per_fold))})
    for b in baselines:
        oof = baseline_oof[b]
        per_fold = [_score(metric, y[test], floor(oof[test])) for _, test in folds]
        table_rows.append({"name": f"{b} on {baseline_preset} (no source)", "strategy": b, "kind": "baseline",
                           "preset": baseline_preset, metric: float(np.mean(per_fold)), f"{metric}_std": float(np.std(per_fold))})
    table = pd.DataFrame(table_rows).sort_values(metric, ascending=metric == "mae", kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    result = ScanResult(table=table, selected=selected, predictions=sel_oof, metric=metric, seconds=time.perf_counter() - t0,
                        candidates=[{k: r[k] for k in ("name", "strategy", "loo", "oof")} for r in results])
    if plot:
        result.plot(plot)
    return result


def select_by_inner_loo(candidates: Sequence[Dict[str, Any]], fold: int, k: int = 1) -> List[Dict[str, Any]]:
    """The ``k`` candidates with the lowest inner leave-one-out error on ``fold``'s training rows
    (ties keep the candidates' order); only training rows enter this choice."""
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i]["loo"][fold], i))
    return [candidates[i] for i in order[: max(1, int(k))]]


def _baseline(kind: str, formulas, y, folds, task: str, preset: str, desc, seed: int) -> np.ndarray:
    from .._trees import one_thread

    X = desc(preset).astype(np.float64)
    oof = np.zeros(len(y))
    for train, test in folds:
        if kind == "ridge":
            params = _ridge_fit(np.nan_to_num(X[train]), y[train])
            oof[test] = _ridge_predict(params, np.nan_to_num(X[test]))
        elif kind in ("gbm", "rf"):
            from .._trees import fit_tree

            # settings chosen by inner 3-fold CV on this fold's training rows (matxfer.transfer.BASELINE_GRIDS),
            # the same baseline as cross_validate, learning_curve and transfer.auto report
            model, _ = fit_tree(kind, X[train], y[train], task != "regression", seed=seed)
            with one_thread():
                oof[test] = model.predict(X[test]) if task == "regression" else model.predict_proba(X[test])[:, 1]
        elif kind == "scratch":
            try:
                from ..transfer import FromScratch
            except ImportError:
                raise ImportError('the "scratch" baseline needs PyTorch: pip install "matxfer[torch]"') from None
            oof[test] = FromScratch(seed=0).adapt(X[train], y[train]).predict(X[test])
        else:
            raise ValueError(f"unknown baseline {kind!r}; choose from gbm, rf, ridge, scratch")
    return oof
