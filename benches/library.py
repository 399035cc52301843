"""Model library benchmarks: one-call prediction speed, the shotgun scan, small-data selection and
the transferability map.

    MATXFER_LIBRARY=/path/to/library python benches/library.py --sections predict,scan,small,map

Sections
  predict  LibraryModel.predict on 1,000,000 formulas (real formulas from the shared DFT sets,
           repeated) with an MLP source: featurization (Rust, chunked) + numpy network, end to end
  scan     matxfer.transfer.scan over every library model on matbench expt_gap (4,604 rows, 5-fold,
           frozen features + ridge), against gradient boosting and ridge on magpie_full descriptors
  small    50 and 100 training rows of expt_gap (5 random subsets each; the rest is the test set):
           the source chosen by leave-one-out on the training rows only, against from-scratch MLP,
           gradient boosting, and the best source chosen in hindsight (on the test rows)
  map      transferability map: source -> target gain of frozen features + ridge over ridge on the
           same preset's descriptors (no source), 5-fold CV, magpie_full sources by default, for expt_gap, expt_is_metal (ROC AUC),
           ESTM thermal conductivity near 300 K (log10) and the matbench glass set (ROC AUC)

Results: benches/out/library/ (JSON, PNG, CSV); the markdown lines go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
OUT = HERE / "out" / "library"
SECTIONS = ("predict", "scan", "small", "map")


def read_csv(path, value_columns=()):
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in value_columns}, dtype={"formula": str})


def targets():
    import pandas as pd

    gap = read_csv(DATA / "composition/experimental/expt_gap_matbench.csv", ["band_gap_expt_eV"])
    metal = read_csv(DATA / "composition/experimental/expt_is_metal_matbench.csv", ["is_metal"])
    glass = read_csv(DATA / "composition/experimental/glass_matbench.csv", ["glass_forming"])
    e = read_csv(DATA / "composition/experimental/thermoelectric_estm.csv", ["temperature_K", "thermal_conductivity_W_per_mK"])
    room = e[(e.temperature_K >= 280) & (e.temperature_K <= 320) & (e.thermal_conductivity_W_per_mK > 0)]
    kappa = room.groupby("formula", sort=True).thermal_conductivity_W_per_mK.mean()
    return {
        "expt_gap": (gap.formula.tolist(), gap.band_gap_expt_eV.to_numpy(float), "regression"),
        "expt_is_metal": (metal.formula.tolist(), metal.is_metal.to_numpy(float), "classification"),
        "estm_log10_kappa_300K": (kappa.index.tolist(), np.log10(kappa.to_numpy(float)), "regression"),
        "glass": (glass.formula.tolist(), glass.glass_forming.to_numpy(float), "classification"),
        "_pd": pd,
    }


def _predict_formulas(n=1_000_000):
    formulas = []
    for f in ("composition/dft/oqmd_bandgap_crabnet.csv.gz", "composition/dft/mp_e_form_matbench.csv",
              "composition/dft/mp_gap_matbench.csv", "composition/dft/jarvis_dft_3d_composition.csv"):
        formulas += read_csv(DATA / f).formula.tolist()
    return (formulas * (n // len(formulas) + 1))[:n]


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _time_predict(name, formulas, repeats):
    """Best-of-``repeats`` wall time of ``load(name).predict(formulas)`` and the CPU seconds of that run."""
    import matxfer.library as lib

    model = lib.load(name)
    model.predict(formulas[:20000])  # warm-up (thread pools, pages)
    runs = []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), _cpu_seconds()
        pred = model.predict(formulas)
        runs.append((time.perf_counter() - w0, _cpu_seconds() - c0))
    wall, cpu = min(runs)
    return {"wall_s": wall, "cpu_s": cpu, "runs": runs, "load": os.getloadavg()[0], "sum": float(np.sum(pred)),
            "finite": int(np.isfinite(pred).sum())}, model, pred


def section_predict(args):
    """End to end on 1M formulas, wall and CPU seconds (the cores are shared: per CPU-second is the
    fairer figure under load). ``--before DIR`` times the same call with another matxfer python
    tree (e.g. ``git archive <commit> python | tar -x -C DIR``) in a subprocess, right after."""
    import subprocess
    import sys

    formulas = _predict_formulas(args.predict_rows)
    if args.worker:
        print(json.dumps(_time_predict(args.predict_models[0], formulas, args.repeats)[0]))
        return {}
    out = {}
    for name in args.predict_models:
        now, model, pred = _time_predict(name, formulas, args.repeats)
        t0 = time.perf_counter()
        model.featurize(formulas)
        now["featurize_only_s"] = time.perf_counter() - t0
        row = {"current": now}
        if args.before:
            env = {**os.environ, "PYTHONPATH": str(Path(args.before).resolve())}
            cmd = [sys.executable, __file__, "--sections", "predict", "--worker", "--predict-models", name,
                   "--repeats", str(args.repeats), "--predict-rows", str(args.predict_rows)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row["before"] = json.loads(done.stdout.strip().splitlines()[-1])
            # the same predictions to float32 rounding (relative to the sum of |predictions|)
            assert abs(row["before"]["sum"] - now["sum"]) <= 1e-5 * float(np.abs(pred).sum()) + 1e-3
        n = len(formulas)
        line = (f"| predict {name} | {n:,} formulas | {now['wall_s']:.2f} s wall = {n / now['wall_s']:,.0f}/s | "
                f"{now['cpu_s']:.2f} CPU-s = {n / now['cpu_s']:,.0f}/CPU-s | featurize alone {now['featurize_only_s']:.2f} s |")
        if "before" in row:
            b = row["before"]
            line += (f" before: {b['wall_s']:.2f} s = {n / b['wall_s']:,.0f}/s, {n / b['cpu_s']:,.0f}/CPU-s "
                     f"(x{b['wall_s'] / now['wall_s']:.2f} wall, x{b['cpu_s'] / now['cpu_s']:.2f} CPU) |")
        print(line + f" load {now['load']:.1f} |", flush=True)
        out[name] = row
    return out


def section_scan(args):
    from matxfer.transfer import scan

    t = targets()
    formulas, y, _ = t["expt_gap"]
    c0, load0 = _cpu_seconds(), os.getloadavg()[0]
    result = scan(formulas, y, cv=5, n_jobs=args.jobs, strategies=("frozen-ridge",), output_floor=0.0,
                  baselines=("gbm", "ridge"), plot=str(OUT / "scan_expt_gap.png"))
    result.table.to_csv(OUT / "scan_expt_gap.csv", index=False)
    n_models = int((result.table.kind == "source").sum())
    cpu = _cpu_seconds() - c0
    print(f"| scan expt_gap | {n_models} models x 5 folds (frozen-ridge) | {result.seconds:.0f} s wall | {cpu:.0f} CPU-s | "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f} |", flush=True)
    print(result.table.head(12).to_string(index=False))
    print(result.table[result.table.kind != "source"].to_string(index=False))
    return {"seconds": result.seconds, "cpu_s": cpu, "n_models": n_models, "selected": result.selected,
            "table_head": result.table.head(30).to_dict(orient="records"),
            "baselines": result.table[result.table.kind != "source"].to_dict(orient="records")}


def section_small(args):
    """For each target and size: 5 random training subsets; every library source scanned on the
    training rows only (inner LOO). Selection rules compared from the same scan: the single best
    source by inner LOO (top-1) and the mean prediction of the top 3 / top 5 by inner LOO."""
    import matxfer
    from matxfer.library.scan import _baseline, _score, select_by_inner_loo
    from matxfer.transfer import scan

    t = targets()
    out = {}
    for target in args.small_targets:
        formulas, y, _ = t[target]
        X_mf = matxfer.featurize(formulas, "magpie_full", dtype=np.float32).values
        for n_train in args.small_sizes:
            rows = []
            for rep in range(args.subsets):
                rng = np.random.default_rng(1000 + rep)
                perm = rng.permutation(len(y))
                train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
                floor = 0.0 if target == "expt_gap" else None
                res = scan(formulas, y, cv=[(train, test)], n_jobs=args.jobs, strategies=("frozen-ridge", "delta"),
                           output_floor=floor, baselines=("gbm",))
                table = res.table
                src = table[table.kind == "source"]
                gbm = float(table[table.kind == "baseline"].mae.iloc[0])
                chosen = {}
                for k in (1, 3, 5, 10, 20):
                    pick = select_by_inner_loo(res.candidates, 0, k)
                    chosen[k] = _score("mae", y[test], np.mean([r["oof"][test] for r in pick], axis=0))
                scratch_oof = _baseline("scratch", formulas, y, [(train, test)], "regression", "magpie_full",
                                        lambda p, X=X_mf: X, 0)
                scratch = _score("mae", y[test], scratch_oof[test] if floor is None else np.maximum(scratch_oof[test], floor))
                rows.append({"rep": rep, "selected": res.selected[0], "chosen_mae": chosen[1], "top3_mae": chosen[3],
                             "top5_mae": chosen[5], "top10_mae": chosen[10], "top20_mae": chosen[20], "best_hindsight_mae": float(src.mae.min()),
                             "best_hindsight": f"{src.name.iloc[0]} [{src.strategy.iloc[0]}]", "gbm_mae": gbm,
                             "scratch_mae": scratch, "seconds": res.seconds})
                print(f"{target} n={n_train} rep={rep}: top1 {chosen[1]:.3f} ({res.selected[0]}), top3 {chosen[3]:.3f}, "
                      f"top5 {chosen[5]:.3f}, top10 {chosen[10]:.3f}, top20 {chosen[20]:.3f}, hindsight {src.mae.min():.3f}, gbm {gbm:.3f}, scratch {scratch:.3f}, "
                      f"{res.seconds:.0f} s", flush=True)
            keys = ("chosen_mae", "top3_mae", "top5_mae", "top10_mae", "top20_mae", "best_hindsight_mae", "gbm_mae", "scratch_mae")
            mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
            h = mean["best_hindsight_mae"]
            print(f"| {target} | {n_train} rows | top-1 {mean['chosen_mae']:.3f} ({mean['chosen_mae'] / h - 1:+.1%}) | "
                  f"top-3 {mean['top3_mae']:.3f} ({mean['top3_mae'] / h - 1:+.1%}) | top-5 {mean['top5_mae']:.3f} "
                  f"({mean['top5_mae'] / h - 1:+.1%}) | top-10 {mean['top10_mae']:.3f} ({mean['top10_mae'] / h - 1:+.1%}) | "
                  f"top-20 {mean['top20_mae']:.3f} ({mean['top20_mae'] / h - 1:+.1%}) | hindsight {h:.3f} | gbm {mean['gbm_mae']:.3f} | "
                  f"scratch {mean['scratch_mae']:.3f} |", flush=True)
            out[f"{target}/{n_train}"] = {"runs": rows, "mean": mean}
    return out


def section_map(args):
    import pandas as pd

    import matxfer.library as lib
    from matxfer.transfer import scan

    t = targets()
    every = lib.list()
    frames = []
    for preset in args.map_presets:
        names = every[every.preset == preset].name.tolist()
        for target in ("expt_gap", "expt_is_metal", "estm_log10_kappa_300K", "glass"):
            formulas, y, task = t[target]
            # the reference is ridge on the same preset's descriptors, with no source
            res = scan(formulas, y, models=names, cv=5, n_jobs=args.jobs, strategies=("frozen-ridge",), task=task,
                       baselines=("ridge",), baseline_preset=preset)
            table, metric = res.table, res.metric
            base = float(table[table.kind == "baseline"][metric].iloc[0])
            src = table[table.kind == "source"].copy()
            src["baseline"] = base
            # gain > 0: the source helps (lower MAE for regression, higher ROC AUC for classification)
            src["gain"] = (base - src[metric]) / base if metric == "mae" else (src[metric] - base) / base
            src["target"] = target
            frames.append(src[["name", "property", "preset", "target", metric, "baseline", "gain"]].rename(columns={metric: "score"}))
            best = src.sort_values("gain").iloc[-1]
            print(f"{target} [{preset}]: ridge baseline {base:.4f}; best {best['name']} {best[metric]:.4f} ({best.gain:+.1%}); "
                  f"{int((src.gain > 0).sum())}/{len(src)} sources help; {res.seconds:.0f} s", flush=True)
    full = pd.concat(frames)
    full.to_csv(OUT / "transferability.csv", index=False)
    matrix = full.pivot_table(index="name", columns="target", values="gain")
    _heatmap(matrix, OUT / "transferability.png")
    summary = {}
    for target in matrix.columns:
        col = matrix[target].sort_values()
        summary[target] = {"best": col.tail(5).round(4).to_dict(), "worst": col.head(5).round(4).to_dict(),
                           "n_helping": int((col > 0).sum()), "n": int(col.notna().sum())}
    return summary


def _heatmap(matrix, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = matrix.sort_index()
    fig, ax = plt.subplots(figsize=(6, 0.12 * len(matrix) + 1.5))
    lim = float(np.nanmax(np.abs(matrix.to_numpy()))) or 1.0
    im = ax.imshow(matrix.to_numpy(), aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(matrix.columns)))
    ax.set_xticklabels(matrix.columns, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(matrix)))
    ax.set_yticklabels(matrix.index, fontsize=4)
    fig.colorbar(im, ax=ax, label="relative gain over ridge on the same descriptors")
    ax.set_title("source -> target transfer (frozen features + ridge, 5-fold CV)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=5)
    parser.add_argument("--predict-models", nargs="*", default=["mp_gap/band_gap/magpie_full/mlp"])
    parser.add_argument("--predict-rows", type=int, default=1_000_000)
    parser.add_argument("--before", default=None, help="predict: also time this matxfer python tree (subprocess)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--small-sizes", nargs="*", type=int, default=[50, 100])
    parser.add_argument("--small-targets", nargs="*", default=["expt_gap", "estm_log10_kappa_300K"])
    parser.add_argument("--map-presets", nargs="*", default=["magpie_full"])
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.worker:
        section_predict(args)
        return
    for section in args.sections.split(","):
        t0 = time.perf_counter()
        result = globals()[f"section_{section}"](args)
        result = {"result": result, "wall_s": time.perf_counter() - t0}
        (OUT / f"{section}.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
