"""``matxfer.transfer.auto`` on every shared experimental target, matbench protocol, beside gradient boosting.

    nice -n 10 env OMP_NUM_THREADS=1 python benches/transfer_auto.py --targets estm_kappa,estm_seebeck
    python benches/transfer_auto.py --quick      # 300-row smoke run of every target

Protocol: matbench outer folds (KFold(5, shuffle, 18012019); StratifiedKFold for classes). In each
outer fold ``auto`` sees the training rows only (its source ranking, candidates, blend and CV+
calibration are all inner); the test rows score it. Beside it, on the same folds: gradient boosting
on magpie_full descriptors with its settings chosen by inner 3-fold CV on the training rows
(``TreeBaseline("gbm")``, :data:`matxfer.transfer.BASELINE_GRIDS`). Reported: MAE (ROC-AUC and balanced
accuracy for classes), coverage of auto's 68 % and 95 % CV+ intervals, and what auto chose per fold.

Targets (regression): expt_gap (matbench, 4604) with the source overlap removed: the band-gap
sources of the library (MP, JARVIS, OQMD gaps and metal classifiers) are replaced by one MP-gap MLP
trained here on mp_gap without any composition of expt_gap (sized as the library sizes a source of that
many rows, ``BuildConfig.size_for``: magpie_full, 512-256-128 on 100,000 seeded rows of the 100,659 clean
ones; 30 epochs; ``--source-rows`` / ``--source-hidden`` change it); ESTM at 280-320 K (mean per formula): log10 thermal
conductivity, Seebeck coefficient, log10 electrical conductivity; UCSB at 300 K: log10 thermal
conductivity, Seebeck coefficient. Classification: expt_is_metal, glass (library as shipped), and qc_ac:
quasicrystal (1) vs approximant crystal (0) for the 158 experimentally reported alloys of Liu et al. (2021)
(XenonPy's QC_AC_data; the at.% composition dict read as a formula; their "OTHERS" negatives are not shared).
MRL/DopNet is left out: 184 of its 193 formulas are UCSB's.
Temperature as an input (``<target>_T``: estm_kappa_T, estm_seebeck_T, estm_sigma_T, ucsb_kappa_T,
ucsb_seebeck_T): every measured row instead of the room-temperature window, the temperature (K) passed
as ``auto(..., conditions=T)`` and as a descriptor column to gbm; the outer folds keep each reduced
composition whole (5 folds, seed 18012019), and so do auto's inner folds and gbm's inner grid search
(``TreeBaseline.adapt(..., groups=)``; ``--regroup-gbm`` redoes only that gbm on a JSON written before). Results: benches/out/transfer_auto/<target>.json.
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
OUT = HERE / "out" / "transfer_auto"
EXP = "composition/experimental/"
TARGETS = ("expt_gap", "estm_kappa", "estm_seebeck", "estm_sigma", "ucsb_kappa", "ucsb_seebeck", "expt_is_metal", "glass",
           "qc_ac", "estm_kappa_T", "estm_seebeck_T", "estm_sigma_T", "ucsb_kappa_T", "ucsb_seebeck_T")
#: thermoelectric targets at every measured temperature, temperature (K) as auto's conditioning input
T_TARGETS = {"estm_kappa_T": ("estm", "thermal_conductivity_W_per_mK", True, "log10 W/m/K"),
             "estm_seebeck_T": ("estm", "seebeck_uV_per_K", False, "uV/K"),
             "estm_sigma_T": ("estm", "electrical_conductivity_S_per_m", True, "log10 S/m"),
             "ucsb_kappa_T": ("ucsb", "thermal_conductivity_W_per_mK", True, "log10 W/m/K"),
             "ucsb_seebeck_T": ("ucsb", "seebeck_uV_per_K", False, "uV/K")}
GAP_SOURCES = ("mp_gap/", "jarvis/band_gap", "jarvis/is_metal", "oqmd_gap/")
#: hidden widths of the clean expt_gap source (None: as the library sizes it; --source-hidden changes it)
SOURCE_HIDDEN = None


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _read(rel):
    import pandas as pd

    return pd.read_csv(DATA / rel, keep_default_na=False, na_values=[""], dtype={"formula": str})


def _room(df, column, lo=280, hi=320, log=False):
    sel = df[(df.temperature_K >= lo) & (df.temperature_K <= hi) & df[column].notna()]
    if log:
        sel = sel[sel[column] > 0]
    per = sel.groupby("formula", sort=True)[column].mean()
    y = per.to_numpy(float)
    return per.index.tolist(), np.log10(y) if log else y


def load_temperature_target(name: str):
    """(formulas, y, temperature_K, unit): every row with a value and a temperature (no averaging)."""
    which, col, log, unit = T_TARGETS[name]
    t = _read(EXP + ("thermoelectric_estm.csv" if which == "estm" else "thermoelectric_ucsb.csv"))
    sel = t[t[col].notna() & t.temperature_K.notna()]
    if log:
        sel = sel[sel[col] > 0]
    y = sel[col].to_numpy(float)
    return sel.formula.tolist(), np.log10(y) if log else y, sel.temperature_K.to_numpy(float), unit


def temperature_design(name: str, quick: bool):
    """A temperature target read once: (formulas, y, temperature, composition keys, magpie_full descriptors
    with the temperature as the last column, the 5 outer folds that keep each composition whole)."""
    import matxfer
    from matxfer.transfer import composition_keys, grouped_folds

    formulas, y, temperature, _ = load_temperature_target(name)
    if quick:
        keep = np.sort(np.random.default_rng(0).choice(len(y), min(len(y), 300), replace=False))
        formulas, y, temperature = [formulas[i] for i in keep], y[keep], temperature[keep]
    keys = composition_keys(formulas)
    X = np.asarray(matxfer.featurize(formulas, preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
    outer = grouped_folds(keys, y, 5, 18012019, False)
    return formulas, y, temperature, keys, np.hstack([X, temperature[:, None]]), outer


def load_target(name: str):
    """(formulas, y, task, output_floor, unit)."""
    if name in T_TARGETS:
        f, y, _, unit = load_temperature_target(name)
        return f, y, "regression", None, unit
    if name == "expt_gap":
        t = _read(EXP + "expt_gap_matbench.csv")
        return t.formula.tolist(), t.band_gap_expt_eV.to_numpy(float), "regression", 0.0, "eV"
    if name.startswith("estm_"):
        e = _read(EXP + "thermoelectric_estm.csv")
        col, log, unit = {"estm_kappa": ("thermal_conductivity_W_per_mK", True, "log10 W/m/K"),
                          "estm_seebeck": ("seebeck_uV_per_K", False, "uV/K"),
                          "estm_sigma": ("electrical_conductivity_S_per_m", True, "log10 S/m")}[name]
        f, y = _room(e, col, log=log)
        return f, y, "regression", None, unit
    if name.startswith("ucsb_"):
        u = _read(EXP + "thermoelectric_ucsb.csv")
        col, log, unit = {"ucsb_kappa": ("thermal_conductivity_W_per_mK", True, "log10 W/m/K"),
                          "ucsb_seebeck": ("seebeck_uV_per_K", False, "uV/K")}[name]
        f, y = _room(u, col, 300, 300, log=log)
        return f, y, "regression", None, unit
    if name == "expt_is_metal":
        t = _read(EXP + "expt_is_metal_matbench.csv")
        return t.formula.tolist(), t.is_metal.to_numpy(int), "classification", None, ""
    if name == "glass":
        t = _read(EXP + "glass_matbench.csv")
        return t.formula.tolist(), t.glass_forming.to_numpy(int), "classification", None, ""
    if name == "qc_ac":
        import ast

        t = _read(EXP + "quasicrystal_qc_ac.csv")
        formulas = ["".join(f"{el}{amount:g}" for el, amount in ast.literal_eval(c).items()) for c in t.composition]
        if not set(t.label) <= {"QC", "AC"}:
            raise ValueError(f"quasicrystal_qc_ac.csv: unexpected labels {sorted(set(t.label) - {'QC', 'AC'})}")
        return formulas, (t.label == "QC").to_numpy(int), "classification", None, ""
    raise ValueError(name)


def clean_gap_sources(target_formulas, quick: bool, source_rows=None):
    """Library sources minus every band-gap source, plus an MP-gap MLP trained without the target's compositions
    on ``source_rows`` seeded rows (0: every clean row; None: as many as the library's recipe takes from a
    source of that size), trained once, then read back from benches/out/transfer_auto/clean_gap_source[_<tag>]."""
    import matxfer
    from matxfer.library import cards
    from matxfer.nn import load_model, save_model
    from matxfer.transfer import default_source_config, overlap_mask, pretrain_mlp

    names = sorted(n for n, c in cards().items() if c.get("modality") == "composition" and not n.startswith(GAP_SOURCES))
    cached = OUT / ("clean_gap_source_quick" if quick else "clean_gap_source" + source_tag(source_rows))
    label = "mp_gap/band_gap/magpie_full/mlp (w/o expt_gap compositions" + (", all rows" if source_rows == 0 else "") + \
        ("" if SOURCE_HIDDEN is None else ", " + "-".join(map(str, SOURCE_HIDDEN))) + ")"
    if (cached / "removed.json").exists():
        sources = {n: n for n in names}
        sources[label] = (load_model(cached).eval(), "magpie_full")
        return sources, json.loads((cached / "removed.json").read_text())["removed"]
    dft = _read("composition/dft/mp_gap_matbench.csv")
    keep = ~overlap_mask(dft.formula.tolist(), target_formulas)
    clean = dft[keep]
    from matxfer.library.builder import BuildConfig

    library_hidden, library_rows = BuildConfig().size_for(len(clean))
    hidden = library_hidden if SOURCE_HIDDEN is None else SOURCE_HIDDEN
    cap = library_rows if source_rows is None else (len(clean) if source_rows == 0 else source_rows)
    n_rows = 2000 if quick else min(len(clean), cap)
    rows = np.sort(np.random.default_rng(0).choice(len(clean), n_rows, replace=False))
    clean = clean.iloc[rows]
    X, _ = matxfer.featurize(clean.formula.tolist(), preset="magpie_full")
    model = pretrain_mlp(np.asarray(X, dtype=np.float64), clean.band_gap_pbe_eV.to_numpy(float), hidden=hidden,
                         config=default_source_config(epochs=5 if quick else 30, seed=0))
    save_model(model, cached)
    (cached / "removed.json").write_text(json.dumps({"removed": int((~keep).sum()), "source_rows": int(n_rows),
                                                     "hidden": list(hidden)}))
    sources = {n: n for n in names}
    sources[label] = (model, "magpie_full")
    return sources, int((~keep).sum())


def source_tag(source_rows) -> str:
    """File-name tag of a non-default expt_gap source ("" for the library-sized default)."""
    rows = "" if source_rows is None else ("_srcall" if source_rows == 0 else f"_src{source_rows}")
    return rows + ("" if SOURCE_HIDDEN is None else "_h" + "-".join(map(str, SOURCE_HIDDEN)))


def run_target(name: str, quick: bool, n_jobs: int, only_folds=None, source_rows=None) -> dict:
    import torch

    import matxfer
    from matxfer.transfer import TreeBaseline, auto, classification_metrics, matbench_kfold

    torch.set_num_threads(1)
    temperature = None
    if name in T_TARGETS:  # outer folds keep each composition whole; gbm sees the temperature as a column
        formulas, y, temperature, keys, X_gb, outer = temperature_design(name, quick)
        task, floor, unit = "regression", None, T_TARGETS[name][3]
    else:
        formulas, y, task, floor, unit = load_target(name)
        if quick:
            keep = np.sort(np.random.default_rng(0).choice(len(y), min(len(y), 300), replace=False))
            formulas, y = [formulas[i] for i in keep], y[keep]
    result = {"target": name, "n": int(len(y)), "task": task, "unit": unit, "quick": quick, "uptime_start": uptime(),
              "folds": []}
    sources = None
    if name == "expt_gap":
        sources, n_removed = clean_gap_sources(formulas, quick, source_rows)
        result["source_rows_removed"] = n_removed
        result["source_rows"] = "all" if source_rows == 0 else ("library recipe" if source_rows is None else source_rows)
    tag = source_tag(source_rows) if name == "expt_gap" else ""
    if temperature is None:
        X_gb = np.asarray(matxfer.featurize(formulas, preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
        split = matbench_kfold(task == "classification")
        outer = list(split.split(np.zeros(len(y)), y) if task == "classification" else split.split(np.zeros(len(y))))
    else:
        result["protocol"] = "5 folds grouped by reduced composition (seed 18012019); temperature as an input"
        result["n_compositions"] = int(len(set(keys.tolist())))
    pred_auto = np.zeros((len(y), 2)) if task == "classification" else np.zeros(len(y))
    pred_gb = np.zeros_like(pred_auto)
    cover = {0.68: np.zeros(len(y), bool), 0.95: np.zeros(len(y), bool)}
    width95 = np.zeros(len(y))
    t_start = time.perf_counter()
    for k, (train, test) in enumerate(outer):
        if only_folds is not None and k not in only_folds:
            continue
        t0 = time.perf_counter()
        f_train = [formulas[i] for i in train]
        f_test = [formulas[i] for i in test]
        cond = None if temperature is None else temperature[train]
        model = auto(f_train, y[train], task=task, sources=sources, output_floor=floor, n_jobs=n_jobs, verbose=True,
                     conditions=cond)
        test_cond = None if temperature is None else temperature[test]
        t_auto = time.perf_counter() - t0
        t1 = time.perf_counter()
        # temperature targets: the inner grid search keeps each composition whole, as auto's inner folds do
        gb = TreeBaseline("gbm", task=task, output_floor=floor).adapt(
            X_gb[train], y[train], groups=None if temperature is None else keys[train])
        t_gb = time.perf_counter() - t1
        fold = {"fold": k, "chosen": model.report["chosen"], "inner_blend": model.report["blend_inner_score"],
                "inner_best_baseline": model.report["best_baseline_score"], "sources_used": model.report["sources_used"],
                "auto_seconds": t_auto, "gb_seconds": t_gb, "gb_params": gb.best_params_,
                "candidates": model.report["candidates"]}
        if task == "classification":
            pred_auto[test] = model.predict_proba(f_test)
            pred_gb[test] = gb.predict_proba(X_gb[test])
            fold["auto"] = classification_metrics(y[test], pred_auto[test])
            # the same blend before its Platt scaling (auto(..., calibrate=False) gives these probabilities)
            fold["auto_uncalibrated"] = classification_metrics(y[test], model.fold_predictions(f_test).mean(axis=0))
            fold["calibration"] = model.report["calibration"]
            fold["gb"] = classification_metrics(y[test], pred_gb[test])
        else:
            pred_auto[test] = model.predict(f_test, conditions=test_cond)
            pred_gb[test] = gb.predict(X_gb[test])
            for c in cover:
                lo, hi = model.predict_interval(f_test, c, conditions=test_cond)
                cover[c][test] = (y[test] >= lo) & (y[test] <= hi)
                if c == 0.95:
                    width95[test] = hi - lo
            fold["auto"] = {"mae": float(np.mean(np.abs(pred_auto[test] - y[test])))}
            fold["gb"] = {"mae": float(np.mean(np.abs(pred_gb[test] - y[test])))}
            fold["coverage_95"] = float(cover[0.95][test].mean())
            fold["coverage_68"] = float(cover[0.68][test].mean())
            fold["median_width_95"] = float(np.median(width95[test]))
            fold["n_test"] = int(len(test))
            # what the intervals were built from, for offline study of other calibrations (not in the JSON)
            OUT.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(OUT / f"{name}{tag}{'_quick' if quick else ''}_fold{k}_intervals.npz", test=test,
                                y_test=y[test], fold_predictions=model.fold_predictions(f_test, test_cond),
                                cal_residuals=model.cal_residuals_, cal_fold=model.cal_fold_)
        result["folds"].append(fold)
        print(f"{name} fold {k}: auto {fold['auto']} gb {fold['gb']} ({t_auto:.0f} s + {t_gb:.0f} s)", flush=True)
        result["uptime_end"] = uptime()
        _write(name + tag, quick, result, partial=True, folds=only_folds)
    if only_folds is not None:
        _write(name + tag, quick, result, folds=only_folds)
        return result
    if task == "classification":
        result["auto"] = {m: float(np.mean([f["auto"][m] for f in result["folds"]])) for m in ("roc_auc", "balanced_accuracy", "log_loss")}
        result["auto_uncalibrated"] = {m: float(np.mean([f["auto_uncalibrated"][m] for f in result["folds"]]))
                                       for m in ("roc_auc", "balanced_accuracy", "log_loss")}
        result["gb"] = {m: float(np.mean([f["gb"][m] for f in result["folds"]])) for m in ("roc_auc", "balanced_accuracy", "log_loss")}
    else:
        result["auto"] = {"mae": float(np.mean([f["auto"]["mae"] for f in result["folds"]])),
                          "mae_std": float(np.std([f["auto"]["mae"] for f in result["folds"]])),
                          "coverage_68": float(cover[0.68].mean()), "coverage_95": float(cover[0.95].mean()),
                          "median_width_95": float(np.median(width95))}
        result["gb"] = {"mae": float(np.mean([f["gb"]["mae"] for f in result["folds"]])),
                        "mae_std": float(np.std([f["gb"]["mae"] for f in result["folds"]]))}
        result["auto_vs_gb"] = result["auto"]["mae"] / result["gb"]["mae"] - 1.0
    result.update(seconds=time.perf_counter() - t_start, uptime_end=uptime())
    _write(name + tag, quick, result)
    return result


def regroup_gbm(name: str, quick: bool) -> dict:
    """Temperature targets: gbm again on the same outer folds, with its settings chosen by inner folds that
    keep each composition whole (as auto's are, and as the main run's gbm now does), for a JSON written when
    the main run's gbm searched with plain KFold, which scores a setting on temperatures of materials it
    trained on. Adds ``gb_grouped`` to the target's JSON."""
    from matxfer.transfer import TreeBaseline

    path = OUT / f"{name}{'_quick' if quick else ''}.json"
    r = json.loads(path.read_text())
    _, y, _, keys, X, outer = temperature_design(name, quick)
    folds = []
    t0 = time.perf_counter()
    for k, (train, test) in enumerate(outer):
        model = TreeBaseline("gbm", task="regression").adapt(X[train], y[train], groups=keys[train])
        params = model.best_params_
        mae = float(np.mean(np.abs(model.predict(X[test]) - y[test])))
        folds.append({"fold": k, "mae": mae, "params": params})
        print(f"{name} fold {k}: gbm with grouped inner CV {mae:.4f} ({params})", flush=True)
    maes = [f["mae"] for f in folds]
    r["gb_grouped"] = {"mae": float(np.mean(maes)), "mae_std": float(np.std(maes)), "folds": folds,
                       "seconds": time.perf_counter() - t0, "uptime": uptime()}
    r["auto_vs_gb_grouped"] = r["auto"]["mae"] / r["gb_grouped"]["mae"] - 1.0
    path.write_text(json.dumps(r, indent=1, default=float))
    return r


def _write(name, quick, result, partial=False, folds=None):
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = ("_quick" if quick else "") + ("_folds" + "".join(map(str, folds)) if folds is not None else "") + (".partial" if partial else "")
    (OUT / f"{name}{suffix}.json").write_text(json.dumps(result, indent=1, default=float))


def merge(name: str, quick: bool) -> dict:
    """Combine per-fold runs (``--folds``): fold metrics from their JSON, coverage pooled over test rows."""
    parts = sorted(OUT.glob(f"{name}{'_quick' if quick else ''}_folds*.json"))
    parts = [json.loads(p.read_text()) for p in parts if not p.name.endswith(".partial.json")] or \
        [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{name}{'_quick' if quick else ''}_folds*.partial.json"))]
    folds = sorted((f for p in parts for f in p["folds"]), key=lambda f: f["fold"])
    r = dict(parts[0])
    r["folds"] = folds
    r["uptime_start"] = min(p["uptime_start"] for p in parts)
    r["uptime_end"] = max(p.get("uptime_end", p["uptime_start"]) for p in parts)
    r["seconds"] = max(sum(f["auto_seconds"] + f["gb_seconds"] for f in p["folds"]) for p in parts)
    r["n_folds_done"] = len(folds)
    metrics = ("roc_auc", "balanced_accuracy", "log_loss") if r["task"] == "classification" else ("mae",)
    for who in ("auto", "gb", "auto_uncalibrated"):
        if who not in folds[0]:
            continue
        r[who] = {m: float(np.mean([f[who][m] for f in folds])) for m in metrics}
        if r["task"] != "classification":
            r[who]["mae_std"] = float(np.std([f[who]["mae"] for f in folds]))
    if r["task"] != "classification":
        n_test = [f["n_test"] for f in folds]
        for c in ("coverage_68", "coverage_95"):
            r["auto"][c] = float(np.average([f[c] for f in folds], weights=n_test))
        r["auto"]["median_width_95"] = float(np.median([f["median_width_95"] for f in folds]))
        r["auto_vs_gb"] = r["auto"]["mae"] / r["gb"]["mae"] - 1.0
    (OUT / f"{name}{'_quick' if quick else ''}.json").write_text(json.dumps(r, indent=1, default=float))
    return r


def report(r: dict) -> str:
    head = f"{r['target']} (n = {r['n']}, {r['seconds']:.0f} s; start: {r['uptime_start']}; end: {r['uptime_end']})"
    chosen = "; ".join(" + ".join(f"{n} x{w:.2f}" for n, w in f["chosen"]) for f in r["folds"])
    if r["task"] == "classification":
        a, g = r["auto"], r["gb"]
        return (f"{head}\n| model | ROC-AUC | balanced acc. | log loss |\n|---|---|---|---|\n"
                f"| auto | {a['roc_auc']:.4f} | {a['balanced_accuracy']:.4f} | {a['log_loss']:.4f} |\n"
                + (f"| auto before its Platt scaling | {u['roc_auc']:.4f} | {u['balanced_accuracy']:.4f} | "
                   f"{u['log_loss']:.4f} |\n" if (u := r.get("auto_uncalibrated")) else "")
                + f"| gbm (inner-CV grid) | {g['roc_auc']:.4f} | {g['balanced_accuracy']:.4f} | {g['log_loss']:.4f} |\n"
                f"chosen per fold: {chosen}\n")
    a, g = r["auto"], r["gb"]
    return (f"{head}\n| model | MAE ({r['unit']}) | cov 68 | cov 95 | median 95 % width |\n|---|---|---|---|---|\n"
            f"| auto | {a['mae']:.4f} ± {a['mae_std']:.4f} | {a['coverage_68']:.3f} | {a['coverage_95']:.3f} | {a['median_width_95']:.3f} |\n"
            f"| gbm (inner-CV grid) | {g['mae']:.4f} ± {g['mae_std']:.4f} | | | |\n"
            + (f"| gbm (inner CV grouped by composition) | {r['gb_grouped']['mae']:.4f} ± {r['gb_grouped']['mae_std']:.4f} "
               f"| | | |\n" if "gb_grouped" in r else "")
            + (f"auto vs gbm with grouped inner CV: {100 * r['auto_vs_gb_grouped']:+.1f} % MAE\n" if "gb_grouped" in r else "")
            + f"auto vs gbm: {100 * r['auto_vs_gb']:+.1f} % MAE; chosen per fold: {chosen}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--folds", default=None, help="run only these outer folds (e.g. 0,1), for parallel processes; "
                        "merge their JSON with --merge")
    parser.add_argument("--merge", action="store_true", help="combine the per-fold JSON files of each target and report")
    parser.add_argument("--source-rows", type=int, default=None, help="expt_gap: rows of the clean MP-gap source "
                        "(default: as the library's recipe takes them, 100,000; 0 = every mp_gap row whose composition is "
                        "not in expt_gap)")
    parser.add_argument("--regroup-gbm", action="store_true", help="temperature targets: rerun gbm with grouped "
                        "inner CV on the saved outer folds (auto is not rerun) and report both")
    parser.add_argument("--source-hidden", default=None, help="expt_gap: hidden widths of the clean MP-gap "
                        "source (default: as the library's recipe sizes it, 512,256,128)")
    args = parser.parse_args(argv)
    if args.source_rows is not None and args.source_rows < 0:
        parser.error("--source-rows must be >= 0")
    global SOURCE_HIDDEN
    SOURCE_HIDDEN = None if args.source_hidden is None else tuple(int(h) for h in args.source_hidden.split(","))
    for name in args.targets.split(","):
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; choose from {TARGETS}")
        stem = name + (source_tag(args.source_rows) if name == "expt_gap" else "")
        if args.regroup_gbm:
            if name not in T_TARGETS:
                parser.error(f"--regroup-gbm is for the temperature targets {tuple(T_TARGETS)}")
            r = regroup_gbm(name, args.quick)
        elif args.merge:
            r = merge(stem, args.quick)
        elif args.report_only:
            r = json.loads((OUT / f"{stem}{'_quick' if args.quick else ''}.json").read_text())
        else:
            folds = None if args.folds is None else [int(f) for f in args.folds.split(",")]
            r = run_target(name, args.quick, args.jobs, folds, args.source_rows)
            if folds is not None:
                continue
        print(report(r), flush=True)


if __name__ == "__main__":
    main()
