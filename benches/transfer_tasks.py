"""Transfer learning, second step: classification, calibrated uncertainty, several fidelities.

    nice -n 10 env OMP_NUM_THREADS=1 python benches/transfer_tasks.py --sections is_metal,glass
    python benches/transfer_tasks.py --quick     # smoke run of every section on small slices

Sections (also reachable as ``python benches/transfer.py --sections <name>``)
  is_metal     matbench expt_is_metal, matbench protocol (StratifiedKFold(5, shuffle, 18012019)); source =
               the shipped library classifier mp_gap/is_metal/magpie_full/mlp (MP PBE gap = 0), its source
               rows (mp_gap, label gap == 0) for MultiTask; against gradient boosting and a random forest on
               the same magpie_full descriptors (settings by inner 3-fold CV on the training rows) and the
               from-scratch network
  glass        matbench glass, same protocol; source = library mp_stability/is_stable/magpie_full/mlp
               (Bartel et al. MP stability), source rows = mp_stability_bartel (decomposition energy <= 0)
  uncertainty  split-conformal intervals (20 % of the training rows calibrate) around a 3-seed Delta
               ensemble (expt_gap, source = library mp_gap/band_gap) and a 3-seed FineTune ensemble (ESTM
               log10 thermal conductivity at 280-320 K, source = library matbench_log_gvrh): coverage of
               68/95 % intervals, miscalibration area, MAE of the most confident x % vs a random x %;
               matbench 5-fold split

Results go to benches/out/transfer_tasks/<section>.json; the markdown table goes to stdout.
Every run records ``uptime`` at start and end (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
OUT = HERE / "out" / "transfer_tasks"
SECTIONS = ("is_metal", "glass", "uncertainty")

CLASSIFICATION = {
    # section: (target csv, label column, library source, source csv, source label function)
    "is_metal": ("composition/experimental/expt_is_metal_matbench.csv", "is_metal", "mp_gap/is_metal/magpie_full/mlp",
                 "composition/dft/mp_gap_matbench.csv", lambda df: (df.band_gap_pbe_eV.to_numpy(float) == 0).astype(float)),
    "glass": ("composition/experimental/glass_matbench.csv", "glass_forming", "mp_stability/is_stable/magpie_full/mlp",
              "composition/dft/mp_stability_bartel_crabnet.csv",
              lambda df: (df.decomposition_energy_eV_per_atom.to_numpy(float) <= 0).astype(float)),
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _read(rel):
    import pandas as pd

    return pd.read_csv(DATA / rel, keep_default_na=False, na_values=[""], dtype={"formula": str})


def _features(library_model, formulas):
    return np.asarray(library_model.featurize(list(formulas)), dtype=np.float64)


def run_classification(section: str, quick: bool) -> dict:
    import torch

    from matxfer import library
    from matxfer.transfer import (
        Delta,
        Ensemble,
        FineTune,
        FromScratch,
        FrozenFeatures,
        MultiTask,
        cross_validate,
        default_joint_config,
        default_target_config,
    )

    torch.set_num_threads(1)
    target_csv, column, source_name, source_csv, source_label = CLASSIFICATION[section]
    t = _read(target_csv)
    if quick:
        t = t.sample(600, random_state=0)
    y = t[column].to_numpy(int)
    lm = library.load(source_name)
    X = _features(lm, t.formula)
    s = _read(source_csv).sample(2000 if quick else 20000, random_state=0)
    Xs, ys = _features(lm, s.formula), source_label(s)
    source = lm.to_torch()
    tc = default_target_config(epochs=20 if quick else 100, patience=5 if quick else 15)
    jc = default_joint_config(epochs=4 if quick else 20, patience=3 if quick else 6)
    contenders = {
        "FromScratch (no source)": FromScratch(task="classification", target_config=tc),
        "FrozenFeatures (logistic)": FrozenFeatures(head="ridge"),
        "FineTune": FineTune(target_config=tc),
        "Delta (logit offset)": Delta(target_config=tc),
        "MultiTask": MultiTask(joint_config=jc, max_source_rows=2000 if quick else 10000),
        "Ensemble (3 FineTune seeds)": Ensemble([FineTune(target_config=tc, seed=k) for k in range(3)]),
    }
    from matxfer.transfer import TreeBaseline, classification_metrics

    p = lm.predict(X)
    rows = {"library source alone (no adaptation)": classification_metrics(y, np.stack([1 - p, p], axis=1))}
    # transfer strategies first (cheap), then the tree baselines (inner-CV grid search: the expensive part);
    # the JSON is rewritten after every row, so a run cut short keeps what it finished
    contenders["gbm (no transfer, inner-CV grid)"] = TreeBaseline("gbm", task="classification")
    contenders["rf (no transfer, inner-CV grid)"] = TreeBaseline("rf", task="classification")
    for label, strategy in contenders.items():
        strategy.use_source(source, Xs, ys)
        t0 = time.perf_counter()
        res = cross_validate(strategy, X, y, name=label)
        rows[label] = {**res.summary(), "seconds": time.perf_counter() - t0}
        print(f"{section}: {label} ROC-AUC {res.mean('roc_auc'):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        _partial(section, quick, {"section": section, "n": int(len(y)), "source": source_name, "rows": rows})
    return {"section": section, "n": int(len(y)), "source": source_name, "rows": rows}


def _uncertainty_data(which: str, quick: bool):
    from matxfer import library

    if which == "expt_gap":
        t = _read("composition/experimental/expt_gap_matbench.csv")
        lm = library.load("mp_gap/band_gap/magpie_full/mlp")
        formulas, y = t.formula.tolist(), t.band_gap_expt_eV.to_numpy(float)
    else:
        e = _read("composition/experimental/thermoelectric_estm.csv")
        room = e[(e.temperature_K >= 280) & (e.temperature_K <= 320) & (e.thermal_conductivity_W_per_mK > 0)]
        per = room.groupby("formula", sort=True).thermal_conductivity_W_per_mK.mean()
        lm = library.load("matbench_log_gvrh/log10_shear_modulus/magpie_full/mlp")
        formulas, y = per.index.tolist(), np.log10(per.to_numpy(float))
    if quick:
        keep = np.random.default_rng(0).choice(len(y), min(len(y), 500), replace=False)
        formulas, y = [formulas[i] for i in keep], y[keep]
    return _features(lm, formulas), y, lm


def run_uncertainty(quick: bool) -> dict:
    import torch

    from matxfer.transfer import (
        Conformal,
        Delta,
        Ensemble,
        FineTune,
        default_target_config,
        interval_calibration,
        matbench_kfold,
    )

    torch.set_num_threads(1)
    tc = default_target_config(epochs=20 if quick else 100, patience=5 if quick else 15)
    out = {}
    for which in ("expt_gap", "estm_kappa"):
        X, y, lm = _uncertainty_data(which, quick)
        source = lm.to_torch()
        if which == "expt_gap":
            members = [Delta(target_config=tc, seed=k, output_floor=0.0) for k in range(3)]
        else:
            members = [FineTune(target_config=tc, seed=k) for k in range(3)]
        model = Conformal(Ensemble(members), normalize=True).use_source(source)
        mean, std = np.full(len(y), np.nan), np.full(len(y), np.nan)
        raw_mean, raw_std = np.full(len(y), np.nan), np.full(len(y), np.nan)
        cover95 = np.zeros(len(y), bool)
        for train, test in matbench_kfold().split(X):
            fold = model.fresh().adapt(X[train], y[train])
            mean[test], std[test] = fold.predict(X[test], return_std=True)
            raw_mean[test], raw_std[test] = fold.target_["model"].predict(X[test], return_std=True)
            lo, hi = fold.predict_interval(X[test], 0.95)
            cover95[test] = (y[test] >= lo) & (y[test] <= hi)
        res = {}
        for label, (m, sd) in {"split-conformal (ensemble std, calibrated)": (mean, std),
                               "raw 3-seed ensemble std (uncalibrated)": (raw_mean, raw_std)}.items():
            cal = interval_calibration(y, m, sd)
            if label.startswith("split"):
                cal["coverage_95_conformal_interval"] = float(cover95.mean())
            err = np.abs(y - m)
            order = np.argsort(sd, kind="stable")
            rng = np.random.default_rng(0)
            for frac in (0.1, 0.25, 0.5):
                k = max(int(round(frac * len(y))), 1)
                cal[f"mae_top{int(frac * 100)}pct_confident"] = float(err[order[:k]].mean())
                cal[f"mae_random{int(frac * 100)}pct"] = float(np.mean([err[rng.choice(len(y), k, replace=False)].mean()
                                                                         for _ in range(200)]))
            cal["mae_all"] = float(err.mean())
            res[label] = cal
            print(f"uncertainty {which} {label}: {cal}", flush=True)
        out[which] = {"n": int(len(y)), "rows": res}
    return {"section": "uncertainty", "results": out}


def _partial(section: str, quick: bool, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{section}{'_quick' if quick else ''}.partial.json").write_text(json.dumps(result, indent=1, default=float))


def run_section(section: str, quick: bool) -> dict:
    start = uptime()
    t0 = time.perf_counter()
    result = run_uncertainty(quick) if section == "uncertainty" else run_classification(section, quick)
    result.update(quick=quick, seconds=time.perf_counter() - t0, uptime_start=start, uptime_end=uptime())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{section}{'_quick' if quick else ''}.json").write_text(json.dumps(result, indent=1, default=float))
    return result


def report(result: dict) -> str:
    lines = [f"### {result['section']} ({'quick' if result.get('quick') else 'full'}; {result['seconds']:.0f} s; "
             f"start: {result['uptime_start']}; end: {result['uptime_end']})", ""]
    if result["section"] == "uncertainty":
        for which, block in result["results"].items():
            lines += [f"{which} (n = {block['n']})", "", "| variant | cov 68 | cov 95 | miscal. area | MAE top 10 % | "
                      "random 10 % | top 25 % | random 25 % | all |", "|---|---|---|---|---|---|---|---|---|"]
            for label, r in block["rows"].items():
                c95 = r.get("coverage_95_conformal_interval", r["coverage_95"])
                lines.append(f"| {label} | {r['coverage_68']:.3f} | {c95:.3f} | {r['miscalibration_area']:.3f} | "
                             f"{r['mae_top10pct_confident']:.3f} | {r['mae_random10pct']:.3f} | {r['mae_top25pct_confident']:.3f} | "
                             f"{r['mae_random25pct']:.3f} | {r['mae_all']:.3f} |")
            lines.append("")
        return "\n".join(lines)
    lines += ["| model | ROC-AUC | balanced acc. | F1 | log loss | Brier |", "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['roc_auc']:.4f} | {r['balanced_accuracy']:.4f} | {r['f1']:.4f} | {r['log_loss']:.4f} | "
                     f"{r['brier']:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    for section in args.sections.split(","):
        if section not in SECTIONS:
            parser.error(f"unknown section {section!r}; choose from {SECTIONS}")
        if args.report_only:
            result = json.loads((OUT / f"{section}{'_quick' if args.quick else ''}.json").read_text())
        else:
            result = run_section(section, args.quick)
        print(report(result), flush=True)


if __name__ == "__main__":
    main()
