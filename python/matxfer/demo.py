"""``matxfer demo``: transfer learning from DFT to experimental band gaps, on shipped data only.

1. featurize the 4,604 measured band gaps of matbench ``expt_gap`` (``magpie``, streamed to Parquet);
2. a source MLP trained on a shipped 30,000-row subset of the Materials Project PBE band gaps
   (compositions that occur in expt_gap are left out of it, so the source never saw a target
   composition), trained once and cached in the user cache folder;
3. Delta learning (Hutchinson et al. 2019: the target model learns experiment minus source
   prediction; the best single strategy in ``benches/RESULTS.md``) in 5-fold cross-validation with
   the matbench split, against the same network from scratch, gradient boosting on the same
   descriptors, the source alone, and the published matbench leaderboard;
4. predictions, a parity plot and a learning curve in the output folder.

The settings are sized so the whole run fits in about a minute and a half on two CPU cores (see
``DemoSettings``); ``benches/transfer.py`` runs the full-size comparison.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
SOURCE_FILE = "mp_gap_subset30k.csv.gz"


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run (``quick`` is the setting the test suite uses)."""

    source_rows: Optional[int] = None  # None: the whole shipped subset (30,000 rows minus the overlap)
    source_hidden: Sequence[int] = (256, 128, 64)
    source_epochs: int = 15
    source_batch: int = 1024
    target_rows: Optional[int] = None  # None: all 4,604 rows
    target_hidden: Sequence[int] = (256, 128, 64)
    target_epochs: int = 40
    target_batch: int = 256
    target_lr: float = 3e-3
    target_patience: int = 8
    folds: int = 5
    gbm_trees: int = 300
    curve_sizes: Sequence[Optional[int]] = (100, 400, None)
    torch_threads: int = 1

    def key(self) -> str:
        """Hash of what determines the source model (for the cache)."""
        text = json.dumps([self.source_rows, list(self.source_hidden), self.source_epochs, self.source_batch, 1], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


FULL = DemoSettings()
QUICK = DemoSettings(
    source_rows=2000, source_hidden=(64, 32), source_epochs=3, source_batch=256, target_rows=500, target_hidden=(64, 32),
    target_epochs=8, target_batch=128, target_patience=3, folds=3, gbm_trees=30, curve_sizes=(100, None),
)


def cache_dir() -> Path:
    """``$MATXFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/matxfer``, else ``~/.cache/matxfer``."""
    if os.environ.get("MATXFER_CACHE_DIR"):
        return Path(os.environ["MATXFER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "matxfer"


def _data_path(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("matxfer") / "data" / name))


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _load_source(settings: DemoSettings, target_formulas, n_threads):
    import pandas as pd

    from matxfer.transfer import overlap_mask

    path = _data_path(SOURCE_FILE)
    frame = pd.read_csv(path, keep_default_na=False, dtype={"formula": str})
    if settings.source_rows:
        frame = frame.iloc[: settings.source_rows]
    overlap = overlap_mask(frame["formula"].tolist(), list(target_formulas))
    kept = frame[~overlap]
    return kept["formula"].tolist(), kept["band_gap_pbe_eV"].to_numpy(np.float64), int(overlap.sum()), len(frame), path


def _source_model(settings: DemoSettings, X_src, y_src, data_path: Path, refresh: bool, say):
    """The cached source MLP, or a newly trained one (then cached)."""
    import torch

    from matxfer.nn import load_model, save_model
    from matxfer.transfer import default_source_config, pretrain_mlp

    folder = cache_dir() / f"demo-source-{settings.key()}-{_file_hash(data_path)}-{torch.__version__.split('+')[0]}"
    if (folder / "model.json").exists() and not refresh:
        try:
            return load_model(folder), f"loaded from the cache {folder}", 0.0
        except Exception as exc:  # noqa: BLE001 - a damaged cache is retrained, not fatal
            say(f"   (cached source at {folder} unreadable: {exc}; retraining)")
    start = time.perf_counter()
    config = default_source_config(epochs=settings.source_epochs, batch_size=settings.source_batch, patience=5)
    model = pretrain_mlp(X_src, y_src, hidden=tuple(settings.source_hidden), config=config)
    seconds = time.perf_counter() - start
    try:
        save_model(model, folder, metadata={"preset": "magpie", "target": "band_gap_pbe_eV", "rows": int(len(y_src))})
        where = f"trained in {seconds:.0f} s, cached in {folder}"
    except OSError as exc:
        where = f"trained in {seconds:.0f} s (not cached: {exc})"
    return model, where, seconds


def run(
    out: Path = Path("matxfer-demo"),
    quick: bool = False,
    refresh_source: bool = False,
    n_threads: Optional[int] = None,
    quiet: bool = False,
    progress: Optional[bool] = None,
    settings: Optional[DemoSettings] = None,
) -> int:
    from matxfer.streaming import check_writable

    settings = settings or (QUICK if quick else FULL)
    out = Path(out)
    check_writable(out / "predictions.csv")  # before any work
    t_start = time.perf_counter()
    import torch
    from threadpoolctl import threadpool_limits

    # Small networks and 4,604 rows gain little from a second thread, and OpenMP's spin-waiting
    # makes multi-threaded training many times slower on a machine that is busy with other work.
    torch.set_num_threads(settings.torch_threads)
    with threadpool_limits(settings.torch_threads):
        return _run(out, settings, quick, refresh_source, n_threads, quiet, progress, t_start)


def _run(out, settings, quick, refresh_source, n_threads, quiet, progress, t_start) -> int:
    from matxfer.streaming import featurize_file

    def say(text: str = "") -> None:
        if not quiet:
            print(text, flush=True)

    say("matxfer demo: transfer learning from DFT to experimental band gaps (shipped data, no network)"
        + (" [quick setting]" if quick else ""))
    say()

    # 1. descriptors of the target set, streamed to Parquet like any large file
    import pyarrow.parquet as pq

    expt_path = _data_path("expt_gap_matbench.csv")
    features_path = out / "expt_gap_magpie.parquet"
    summary = featurize_file(expt_path, features_path, keep=["band_gap_expt_eV"], progress=progress, n_threads=n_threads)
    table = pq.read_table(features_path)
    formulas = table.column("formula").to_pylist()
    y = np.array(table.column("band_gap_expt_eV").to_pylist(), dtype=np.float64)
    X = np.column_stack([table.column(i).to_numpy() for i in range(2, table.num_columns)])
    if settings.target_rows:
        formulas, X, y = formulas[: settings.target_rows], X[: settings.target_rows], y[: settings.target_rows]
    say(f"1. featurize  {summary.n_rows:,} formulas of matbench expt_gap -> magpie ({summary.n_features} features) "
        f"in {summary.seconds * 1e3:.0f} ms, {summary.n_rejected} rejected -> {features_path}")

    # 2. source model
    import matxfer

    src_formulas, y_src, n_overlap, n_shipped, data_path = _load_source(settings, formulas, n_threads)
    X_src, _ = matxfer.featurize(src_formulas, "magpie", n_threads=n_threads)
    source, where, _ = _source_model(settings, X_src, y_src, data_path, refresh_source, say)
    hidden = "-".join(str(h) for h in (X.shape[1], *settings.source_hidden, 1))
    say(f"2. source     MLP {hidden} on {len(y_src):,} Materials Project PBE band gaps ({n_shipped:,} shipped rows; "
        f"{n_overlap:,} whose composition is in expt_gap left out): {where}")

    # 3. cross-validation
    from sklearn.model_selection import KFold

    from matxfer.transfer import Delta, FromScratch, cross_validate, default_target_config, regression_metrics
    from matxfer.transfer.evaluation import MATBENCH_SEED
    target_config = default_target_config(epochs=settings.target_epochs, batch_size=settings.target_batch,
                                          lr=settings.target_lr, patience=settings.target_patience)
    cv = KFold(n_splits=settings.folds, shuffle=True, random_state=MATBENCH_SEED)
    protocol = "the matbench split" if settings.folds == 5 and len(y) == 4604 else f"{settings.folds} folds on {len(y):,} rows"
    say(f"3. transfer   {settings.folds}-fold cross-validation ({protocol}); target networks: up to "
        f"{settings.target_epochs} epochs, batch {settings.target_batch}, lr {settings.target_lr:g}, early stopping "
        f"(patience {settings.target_patience})")

    def delta():
        return Delta(output_floor=0.0, hidden=tuple(settings.target_hidden), target_config=target_config).use_source(source)

    def scratch():
        return FromScratch(output_floor=0.0, hidden=tuple(settings.target_hidden), target_config=target_config)

    rows = []
    timings = {}
    t = time.perf_counter()
    result_delta = cross_validate(delta(), X, y, cv=cv, name="delta")
    timings["delta"] = time.perf_counter() - t
    rows.append(("Delta, MLP started from the source (matxfer)", result_delta))
    t = time.perf_counter()
    boosted_delta = Delta(output_floor=0.0, head=_boosting(settings)).use_source(source)
    result_delta_gbm = cross_validate(boosted_delta, X, y, cv=cv, name="delta_gbm")
    timings["delta_gbm"] = time.perf_counter() - t
    rows.append(("Delta with a boosted-tree head (matxfer)", result_delta_gbm))
    # Both members are deterministic on the CPU and see the same folds, so the mean of their
    # out-of-fold predictions is what Ensemble([...]) would give (benches/RESULTS.md "stack").
    from matxfer.transfer import CVResult

    assert result_delta.predictions is not None and result_delta_gbm.predictions is not None  # set by cross_validate
    mean_pred = 0.5 * (result_delta.predictions + result_delta_gbm.predictions)
    result_mean = CVResult("delta_mean", [regression_metrics(y[test], mean_pred[test]) for _, test in cv.split(X)], mean_pred)
    rows.insert(0, ("mean of the two Delta models (matxfer)", result_mean))
    t = time.perf_counter()
    result_scratch = cross_validate(scratch(), X, y, cv=cv, name="scratch")
    timings["scratch"] = time.perf_counter() - t
    rows.append(("same network from scratch", result_scratch))
    t = time.perf_counter()
    gbm_pred = np.full(len(y), np.nan)
    gbm_folds = []
    for train_idx, test_idx in cv.split(X):
        model = _boosting(settings).fit(X[train_idx], y[train_idx])
        gbm_pred[test_idx] = np.maximum(model.predict(X[test_idx]), 0.0)
        gbm_folds.append(regression_metrics(y[test_idx], gbm_pred[test_idx]))
    timings["gbm"] = time.perf_counter() - t

    result_gbm = CVResult("gbm", gbm_folds, gbm_pred)
    rows.append((f"gradient boosting, same descriptors ({settings.gbm_trees} trees)", result_gbm))
    from matxfer.nn import predict

    source_pred = np.maximum(predict(source, X), 0.0)
    source_folds = [regression_metrics(y[test], source_pred[test]) for _, test in cv.split(X)]
    rows.append(("DFT source alone (no experimental training)", CVResult("source", source_folds, source_pred)))

    say()
    say(f"   {'model':<56}{'MAE (eV)':>16}{'RMSE':>8}{'R2':>7}")
    for label, r in rows:
        say(f"   {label:<56}{r.mean('mae'):>8.3f} ± {r.std('mae'):.3f}{r.mean('rmse'):>8.3f}{r.mean('r2'):>7.3f}")
    say(f"   published, expt_gap data only ({LEADERBOARD_SOURCE}):")
    for name, mae in MATBENCH_LEADERBOARD:
        say(f"     {name:<54}{mae:>8.3f}")
    say("   full-size matxfer run (benches/RESULTS.md, 512-256-128 networks, 106k-row source): Delta 0.318/0.338 eV "
        "(source with/without the overlap), 3-seed Delta + boosting 0.305/0.320")
    best = result_mean.mean("mae")
    say(f"   reading: transfer {best:.3f} eV vs the same network from scratch {result_scratch.mean('mae'):.3f} "
        f"(MAE ratio {best / result_scratch.mean('mae'):.2f}) and boosting {result_gbm.mean('mae'):.3f} "
        f"(ratio {best / result_gbm.mean('mae'):.2f}); this run's source and networks are reduced to fit the demo")

    # 4. outputs
    _write_predictions(out / "predictions.csv", formulas, y, {"delta_mean": mean_pred, "delta": result_delta.predictions,
                       "delta_gbm": result_delta_gbm.predictions,
                       "scratch": result_scratch.predictions, "gbm": gbm_pred, "source": source_pred})
    from matxfer.transfer import learning_curve, learning_curve_plot, parity_plot

    parity_plot(y, mean_pred, str(out / "parity.png"),
                title=f"Delta transfer (mean of MLP and boosted head), {settings.folds}-fold CV on expt_gap", unit="eV")
    t = time.perf_counter()
    curves = {
        "Delta transfer": learning_curve(delta(), X, y, sizes=settings.curve_sizes, n_repeats=1),
        "from scratch": learning_curve(scratch(), X, y, sizes=settings.curve_sizes, n_repeats=1),
    }
    timings["learning_curve"] = time.perf_counter() - t
    learning_curve_plot(curves, str(out / "learning_curve.png"), title="expt_gap: test MAE vs training rows (20 % test split)", unit="eV")
    say()
    say("4. learning curve (test MAE in eV on a fixed 20 % split, one draw per size):")
    say("   " + f"{'rows':<16}" + "".join(f"{n:>8,}" for n in curves["Delta transfer"]["sizes"]))
    for name, curve in curves.items():
        say("   " + f"{name:<16}" + "".join(f"{m:>8.3f}" for m in curve["mae"]))
    summary_json = {
        "settings": dataclasses.asdict(settings),
        "cv": {r.name: r.summary() for _, r in rows},
        "learning_curve": {k: {"sizes": v["sizes"], "mae": v["mae"]} for k, v in curves.items()},
        "seconds": {**timings, "total": time.perf_counter() - t_start},
        "leaderboard": {"source": LEADERBOARD_SOURCE, "mae": dict(MATBENCH_LEADERBOARD)},
    }
    (out / "summary.json").write_text(json.dumps(summary_json, indent=1, default=str))
    say()
    say(f"outputs in {out}/: expt_gap_magpie.parquet (features), predictions.csv (out-of-fold), parity.png, "
        f"learning_curve.png, summary.json")
    say(f"total {time.perf_counter() - t_start:.0f} s")
    sys.stdout.flush()
    return 0


def _boosting(settings: DemoSettings):
    """Gradient boosting for the demo: squared error (with an absolute-error loss and this few trees,
    boosting stalls on the many 0 eV metal targets, whose median residual is 0)."""
    from matxfer.transfer.heads import gbm_regressor

    return gbm_regressor(loss="squared_error", max_iter=settings.gbm_trees, learning_rate=0.1)


def _write_predictions(path: Path, formulas, y, predictions) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["formula", "band_gap_expt_eV", *[f"predicted_{k}_eV" for k in predictions]])
        for i, formula in enumerate(formulas):
            writer.writerow([formula, repr(float(y[i])), *[f"{float(p[i]):.4f}" for p in predictions.values()]])
