"""``matxfer demo``: transfer learning from DFT to experimental band gaps, on shipped data only, no torch.

1. featurize the 4,604 measured band gaps of matbench ``expt_gap`` (``magpie_full``, streamed to Parquet);
2. the source is the shipped library model ``mp_gap/band_gap/magpie_full/mlp`` (an MLP trained on
   95,565 Materials Project PBE band gaps), run with numpy;
3. Delta learning with a boosted-tree head (Hutchinson et al. 2019: the head learns experiment minus
   source prediction from the descriptors and the source prediction; ``delta_gbm`` in
   ``benches/RESULTS.md``, the best strategy that needs no network training) in 5-fold cross-validation
   with the matbench split, against gradient boosting on the same descriptors (no source), a
   from-scratch network (scikit-learn's ``MLPRegressor``), the source alone, and the published matbench
   leaderboard;
4. predictions, a parity plot and a learning curve in the output folder.

The source's training rows overlap expt_gap: the compositions of 3,067 of the 4,604 expt_gap rows are
among its 95,565 training rows (``SOURCE_OVERLAP``, reproduced by ``tests/test_cli.py`` from the
shared data). The library's split rule holds a composition out of every model's training rows when
a hash of the composition falls in a 10 % bucket, so the demo knows exactly which expt_gap rows the
source can never have seen and reports every model on those rows too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

# matbench v0.1 expt_gap leaderboard (mean MAE over the 5 folds, eV), from
# materialsproject/matbench, docs_src/Leaderboards Per-Task/matbench_v0.1_matbench_expt_gap.md
# (commit 2370a43fef59). Entries use the expt_gap data only; the Delta model here also uses DFT data.
MATBENCH_LEADERBOARD = (
    ("Ax/SAASBO CrabNet v1.2.7", 0.3310),
    ("MODNet v0.1.12", 0.3327),
    ("CrabNet", 0.3463),
    ("AMMExpress v2020 (Automatminer)", 0.4161),
    ("RF-SCM/Magpie", 0.4461),
    ("Dummy (predicts the mean)", 1.1435),
)
LEADERBOARD_SOURCE = (
    "matbench v0.1 leaderboard, github.com/materialsproject/matbench "
    "docs_src/Leaderboards Per-Task/matbench_v0.1_matbench_expt_gap.md @ 2370a43"
)
SOURCE_MODEL = "mp_gap/band_gap/magpie_full/mlp"
#: expt_gap rows whose reduced composition occurs among the source model's 95,565 training rows
#: (the rows are rebuilt from ../shared/data with the card's split and checked against the card's
#: rows_sha256; tests/test_cli.py::test_demo_source_overlap_figure recomputes it).
SOURCE_OVERLAP = 3067
MATBENCH_SEED = 18012019  # random_state of matbench's KFold(n_splits=5, shuffle=True)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run (``quick`` is the setting the test suite uses). The model settings are
    fixed in advance (scikit-learn's defaults where it has them), not tuned on the test folds."""

    target_rows: Optional[int] = None  # None: all 4,604 rows
    folds: int = 5
    gbm_trees: int = 300
    gbm_lr: float = 0.1
    mlp_hidden: Sequence[int] = (256, 128)
    mlp_max_iter: int = 300
    curve_sizes: Sequence[Optional[int]] = (100, 400, None)
    threads: int = 1


FULL = DemoSettings()
QUICK = DemoSettings(target_rows=500, folds=3, gbm_trees=30, mlp_hidden=(64, 32), mlp_max_iter=60, curve_sizes=(100, None))


def _data_path(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("matxfer") / "data" / name))


def run(
    out: Path = Path("matxfer-demo"),
    quick: bool = False,
    n_threads: Optional[int] = None,
    quiet: bool = False,
    progress: Optional[bool] = None,
    settings: Optional[DemoSettings] = None,
    jobs: Optional[int] = None,
) -> int:
    """Run the demo; ``jobs`` model fits run at once in worker processes (default: one per core, at
    most 4; 1: all in this process). Every fit is single-threaded and seeded, so the results do not
    depend on ``jobs``."""
    from matxfer.streaming import check_writable

    settings = settings or (QUICK if quick else FULL)
    out = Path(out)
    check_writable(out / "predictions.csv")  # before any work
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    t_start = time.perf_counter()
    try:
        import matplotlib  # noqa: F401
        import pyarrow  # noqa: F401
        import sklearn  # noqa: F401
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise ImportError(f'matxfer demo needs {exc.name}: pip install "matxfer[demo]"') from None

    # 4,604 rows gain little from a second thread per fit, and OpenMP's spin-waiting makes
    # multi-threaded fits many times slower on a machine that is busy with other work: the cores are
    # used by running independent fits side by side instead (``jobs``).
    with threadpool_limits(settings.threads):
        return _run(out, settings, quick, n_threads, quiet, progress, t_start, jobs or default_jobs())


def default_jobs() -> int:
    """One worker per core available to this process, at most 4 (the demo has about 20 fits)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _boosting(settings: DemoSettings):
    """Gradient boosting: scikit-learn's histogram boosting, squared error (with an absolute-error
    loss and a few hundred trees boosting stalls on the many 0 eV metals, whose median residual is 0),
    no early stopping, so a fit is deterministic."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(loss="squared_error", max_iter=settings.gbm_trees, learning_rate=settings.gbm_lr,
                                         early_stopping=False, random_state=0)


def _network(settings: DemoSettings):
    """The from-scratch network: scikit-learn's MLPRegressor (ReLU, Adam, early stopping on 10 % of the
    training rows) on standardized descriptors clipped to the training range, so an out-of-range
    test composition cannot drive it far outside what it was fitted on."""
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return make_pipeline(StandardScaler(), FunctionTransformer(np.clip, kw_args={"a_min": -10.0, "a_max": 10.0}),
                         MLPRegressor(hidden_layer_sizes=tuple(settings.mlp_hidden), max_iter=settings.mlp_max_iter,
                                      early_stopping=True, random_state=0))


#: the models compared in cross-validation: key -> (label, estimator, learns the residual of the source)
MODELS = {
    "delta_gbm": ("Delta, boosted head on descriptors + source (matxfer)", "boosting", True),
    "gbm": ("gradient boosting, same descriptors, no source", "boosting", False),
    "scratch": ("network from scratch (scikit-learn MLPRegressor)", "network", False),
}


def _fit_predict(key: str, settings: DemoSettings, X, y, s, train_idx, test_idx):
    """Fit one model of the table on ``train_idx`` and predict ``test_idx`` (``s``: the source
    prediction); returns the predictions (clipped at 0 eV) and the seconds the fit took. A module-level
    function of picklable arguments, so that it can run in a worker process."""
    from threadpoolctl import threadpool_limits

    t = time.perf_counter()
    _, estimator, delta = MODELS[key]
    model = _boosting(settings) if estimator == "boosting" else _network(settings)
    with threadpool_limits(settings.threads):
        if delta:
            model.fit(np.column_stack([X[train_idx], s[train_idx]]), y[train_idx] - s[train_idx])
            pred = s[test_idx] + model.predict(np.column_stack([X[test_idx], s[test_idx]]))
        else:
            model.fit(X[train_idx], y[train_idx])
            pred = model.predict(X[test_idx])
    return np.maximum(pred, 0.0), time.perf_counter() - t


def _fit_all(tasks, settings: DemoSettings, X, y, s, jobs: int):
    """``[(key, train_idx, test_idx), ...]`` -> ``[(predictions, seconds), ...]`` in the same order,
    ``jobs`` fits at a time (joblib's process pool, which scikit-learn already depends on)."""
    if jobs == 1 or len(tasks) == 1:
        return [_fit_predict(key, settings, X, y, s, tr, te) for key, tr, te in tasks]
    from joblib import Parallel, delayed

    # batch_size=1 with the longest fits queued first keeps both cores busy until the end
    return Parallel(n_jobs=min(jobs, len(tasks)), backend="loky", batch_size=1, pre_dispatch="all")(
        delayed(_fit_predict)(key, settings, X, y, s, tr, te) for key, tr, te in tasks)


def _run(out, settings, quick, n_threads, quiet, progress, t_start, jobs) -> int:
    import pyarrow.parquet as pq
    from sklearn.model_selection import KFold

    from matxfer import library
    from matxfer._evaluation import CVResult, learning_curve_plot, parity_plot, regression_metrics
    from matxfer.library.builder import held_out_mask
    from matxfer.streaming import featurize_file

    def say(text: str = "") -> None:
        if not quiet:
            print(text, flush=True)

    say("matxfer demo: transfer learning from DFT to experimental band gaps (shipped data and model, no network)"
        + (" [quick setting]" if quick else ""))
    say()

    # 1. descriptors of the target set, streamed to Parquet like any large file
    source = library.load(SOURCE_MODEL)
    preset = source.preset
    expt_path = _data_path("expt_gap_matbench.csv")
    features_path = out / f"expt_gap_{preset}.parquet"
    summary = featurize_file(expt_path, features_path, preset=preset, keep=["band_gap_expt_eV"], progress=progress,
                             n_threads=n_threads)
    table = pq.read_table(features_path)
    formulas = table.column("formula").to_pylist()
    y = np.array(table.column("band_gap_expt_eV").to_pylist(), dtype=np.float64)
    X = np.column_stack([table.column(i).to_numpy() for i in range(2, table.num_columns)])
    if settings.target_rows:
        formulas, X, y = formulas[: settings.target_rows], X[: settings.target_rows], y[: settings.target_rows]
    say(f"1. featurize  {summary.n_rows:,} formulas of matbench expt_gap -> {preset} ({summary.n_features} features) "
        f"in {summary.seconds * 1e3:.0f} ms, {summary.n_rejected} rejected -> {features_path}")

    # 2. source model and the rows it cannot have seen
    t = time.perf_counter()
    s = np.asarray(source.predict(X.astype(np.float32)), dtype=np.float64)
    held_out, _ = held_out_mask(formulas, float(source.card["build"]["config"]["test_fraction"]))
    src = source.card["source"]
    arch = source.card["architecture"]["init_args"]
    shape = "-".join(str(h) for h in (arch["n_in"], *arch["hidden"], arch["n_out"]))
    say(f"2. source     library model {SOURCE_MODEL} (MLP {shape}, numpy, {(time.perf_counter() - t) * 1e3:.0f} ms): "
        f"{src['n_rows_train']:,} Materials Project PBE band gaps, hold-out MAE {source.card['metrics']['mae']:.3f} eV")
    say(f"   overlap: the compositions of {SOURCE_OVERLAP:,} of the 4,604 expt_gap rows are among its training rows; "
        f"{int(held_out.sum()):,} of these {len(y):,} rows are in the library's held-out composition bucket,")
    say("   so the source never saw them: every model is also scored on those rows (column 'unseen').")

    # 3. cross-validation, and the learning curve on the rows of the first fold: every fit is an
    # independent task, run `jobs` at a time (longest first)
    cv = KFold(n_splits=settings.folds, shuffle=True, random_state=MATBENCH_SEED)
    folds = list(cv.split(X))
    protocol = "the matbench split" if settings.folds == 5 and len(y) == 4604 else f"{settings.folds} folds on {len(y):,} rows"
    say(f"3. transfer   {settings.folds}-fold cross-validation ({protocol}); boosting: {settings.gbm_trees} trees, "
        f"learning rate {settings.gbm_lr:g}; network: MLPRegressor {'-'.join(map(str, settings.mlp_hidden))}, early stopping; "
        f"{jobs} fit{'s' if jobs > 1 else ''} at a time")
    curve_train, curve_test = folds[0]
    curve_sizes = _curve_sizes(settings.curve_sizes, len(curve_train))
    cv_tasks = [(key, train_idx, test_idx) for key in MODELS for train_idx, test_idx in folds]
    curve_tasks = [(key, _subset(curve_train, n), curve_test) for n in curve_sizes if n < len(curve_train) for key in MODELS]
    t = time.perf_counter()
    fitted = _fit_all(cv_tasks + curve_tasks, settings, X, y, s, jobs)
    timings: dict = {"fits_wall": time.perf_counter() - t}
    results = {}
    out_of_fold = {}
    for i, key in enumerate(MODELS):
        out_of_fold[key] = pred = np.full(len(y), np.nan)
        model_fits = fitted[i * len(folds):(i + 1) * len(folds)]
        for (_, test_idx), (fold_pred, _) in zip(folds, model_fits):
            pred[test_idx] = fold_pred
        timings[key] = sum(seconds for _, seconds in model_fits)
        results[key] = CVResult(key, [regression_metrics(y[te], pred[te]) for _, te in folds], pred, timings[key])
    source_pred = np.maximum(s, 0.0)
    results["source"] = CVResult("source", [regression_metrics(y[te], source_pred[te]) for _, te in folds], source_pred)
    labels = {k: v[0] for k, v in MODELS.items()}
    labels["source"] = "DFT source alone (no experimental training)"
    # the curve's last point (all training rows of the first fold) is that fold of the CV above
    curves = {key: {"sizes": curve_sizes, "mae": [], "mae_std": [0.0] * len(curve_sizes)} for key in MODELS}
    curve_fits = iter(zip(curve_tasks, fitted[len(cv_tasks):]))
    timings["learning_curve"] = 0.0
    for n in curve_sizes:
        for key in MODELS:
            if n < len(curve_train):
                _, (pred, seconds) = next(curve_fits)
                timings["learning_curve"] += seconds
            else:
                pred = out_of_fold[key][curve_test]
            curves[key]["mae"].append(regression_metrics(y[curve_test], pred)["mae"])

    def unseen_mae(pred) -> float:
        return float(np.mean(np.abs(pred[held_out] - y[held_out]))) if held_out.any() else float("nan")

    say()
    say(f"   {'model':<56}{'MAE (eV)':>16}{'RMSE':>8}{'R2':>7}{'unseen':>9}")
    for key, r in results.items():
        say(f"   {labels[key]:<56}{r.mean('mae'):>8.3f} ± {r.std('mae'):.3f}{r.mean('rmse'):>8.3f}{r.mean('r2'):>7.3f}"
            f"{unseen_mae(r.predictions):>9.3f}")
    say(f"   published, expt_gap data only ({LEADERBOARD_SOURCE}):")
    for name, mae in MATBENCH_LEADERBOARD:
        say(f"     {name:<54}{mae:>8.3f}")
    say("   full-size matxfer run with torch (benches/RESULTS.md: 106k-row source, 512-256-128 networks): Delta with "
        "boosted head 0.317 eV, 3-seed Delta + boosting 0.305 eV")
    best, gbm, scratch = (results[k].mean("mae") for k in ("delta_gbm", "gbm", "scratch"))
    say(f"   reading: transfer {best:.3f} eV vs boosting without the source {gbm:.3f} (ratio {best / gbm:.2f}) and the "
        f"network from scratch {scratch:.3f} (ratio {best / scratch:.2f}); on the {int(held_out.sum())} unseen rows "
        f"{unseen_mae(results['delta_gbm'].predictions):.3f} vs {unseen_mae(results['gbm'].predictions):.3f}")

    # 4. outputs
    _write_predictions(out / "predictions.csv", formulas, y, held_out,
                       {k: r.predictions for k, r in results.items()})
    parity_plot(y, results["delta_gbm"].predictions, str(out / "parity.png"),
                title=f"Delta transfer (boosted head), {settings.folds}-fold CV on expt_gap", unit="eV")
    names = {"delta_gbm": "Delta transfer", "gbm": "boosting, no source", "scratch": "network from scratch"}
    learning_curve_plot({names[k]: v for k, v in curves.items()}, str(out / "learning_curve.png"),
                        title=f"expt_gap: MAE on the {len(curve_test):,} test rows of CV fold 1 vs training rows", unit="eV")
    say()
    say(f"4. learning curve (MAE in eV on the {len(curve_test):,} test rows of CV fold 1; training rows drawn from that fold's "
        f"{len(curve_train):,}, one draw per size):")
    say("   " + f"{'rows':<22}" + "".join(f"{n:>8,}" for n in curve_sizes))
    for key, curve in curves.items():
        say("   " + f"{names[key]:<22}" + "".join(f"{m:>8.3f}" for m in curve["mae"]))
    summary_json = {
        "settings": dataclasses.asdict(settings),
        "source": {"model": SOURCE_MODEL, "training_rows": src["n_rows_train"], "expt_gap_rows_in_training": SOURCE_OVERLAP,
                   "unseen_rows": int(held_out.sum())},
        "cv": {k: {**r.summary(), "mae_unseen": unseen_mae(r.predictions)} for k, r in results.items()},
        "learning_curve": {k: {"sizes": v["sizes"], "mae": v["mae"]} for k, v in curves.items()},
        "seconds": {**timings, "total": time.perf_counter() - t_start},
        "leaderboard": {"source": LEADERBOARD_SOURCE, "mae": dict(MATBENCH_LEADERBOARD)},
    }
    (out / "summary.json").write_text(json.dumps(summary_json, indent=1, default=str))
    say()
    say(f"outputs in {out}/: {features_path.name} (features), predictions.csv (out-of-fold), parity.png, "
        f"learning_curve.png, summary.json")
    say(f"total {time.perf_counter() - t_start:.0f} s")
    sys.stdout.flush()
    return 0


def _curve_sizes(sizes: Sequence[Optional[int]], n_train: int) -> list:
    """Learning-curve sizes, ``None`` (or more than there are) meaning all ``n_train`` rows."""
    return sorted({n_train if n is None or n >= n_train else int(n) for n in sizes})


def _subset(train_idx, n: int, seed: int = 0):
    """``n`` of the training rows, a seeded draw (one per size)."""
    return np.sort(np.random.default_rng([seed, n]).choice(train_idx, size=n, replace=False))


def _write_predictions(path: Path, formulas, y, held_out, predictions) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["formula", "band_gap_expt_eV", "unseen_by_source", *[f"predicted_{k}_eV" for k in predictions]])
        for i, formula in enumerate(formulas):
            writer.writerow([formula, repr(float(y[i])), int(held_out[i]), *[f"{float(p[i]):.4f}" for p in predictions.values()]])
