"""Attention composition encoder vs the descriptor MLP, each beside gradient boosting on magpie_full.

    OMP_NUM_THREADS=1 nice -n 5 python benches/encoder.py            # every section (tens of minutes on 2 cores)
    OMP_NUM_THREADS=1 nice -n 5 python benches/encoder.py --quick    # smoke run on small slices

Contenders (the same training rows for all of them in every split)
  gbm_magpie_full  gradient boosting (matxfer.transfer.heads.gbm_regressor: 1000 trees, lr 0.05) on magpie_full
                   descriptors, no source: the baseline a user would pick
  mlp_*            MLP (512-256-128) over magpie descriptors: from scratch, FineTune and Delta from a source MLP
  attn_*           AttentionEncoder (mat2vec element embeddings, fraction encoding, 2 attention blocks, d=64,
                   dense 128-64) over the fractional composition: from scratch, FineTune and Delta from a source
                   encoder
Sources are trained once per section on a seeded subset of the source set with every composition of the
target removed ("clean"), same epochs for both architectures, dropout 0.1 in both (the MC-dropout std of
the fine-tuned networks then comes from the very fits in the table). Target networks: the same budget
(--target-epochs, patience 15) for every network.

Sections
  gap      expt_gap (matbench), fixed held-out 20 % test set (seed 0); 3 random training subsets of
           --gap-rows rows from the other 80 %; source = mp_gap
  gap100   the same with 100 training rows (3 subsets)
  thermal  ESTM log10 thermal conductivity at 280-320 K (mean per formula), 5-fold KFold(seed 18012019);
           source = matbench log10 shear modulus (the Slack picture: stiff lattices conduct heat); FineTune
           refits the output scaling to the target (other units than the source)
  calib    expt_gap, first training subset of section gap: a 5-seed FineTune ensemble (MLP source) vs MC dropout
           (30 passes) on the seed-0 fit, uncalibrated: coverage of 68 / 95 % Gaussian intervals,
           miscalibration area, MAE of the 20 % most confident test rows vs all; also for the attention encoder
  temperature
           ESTM with temperature as an input column instead of a fixed 280-320 K window: GroupKFold(5) by
           formula over all measured rows; scored on the held-out formulas' 280-320 K rows against models
           trained on the window only (gradient boosting on magpie_full [+ T], attention scratch [+ T])

Results: benches/out/encoder/<section>.json and a markdown table on stdout; ``uptime`` at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
OUT = HERE / "out" / "encoder"
SECTIONS = ("gap100", "gap", "thermal", "calib", "temperature")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_csv(rel):
    import pandas as pd

    return pd.read_csv(DATA / rel, keep_default_na=False, na_values=[""], dtype={"formula": str})


def features(formulas, conditions=None):
    """(magpie, magpie_full, attention inputs) for a list of formulas."""
    import matxfer
    from matxfer.nn import attention_inputs

    mg = np.asarray(matxfer.featurize(list(formulas), preset="magpie").values, dtype=np.float64)
    mf = np.asarray(matxfer.featurize(list(formulas), preset="magpie_full").values, dtype=np.float64)
    return mg, mf, attention_inputs(formulas, conditions)


def clean_source(source_formulas, source_y, target_formulas, n_rows, seed=0):
    """Seeded subset of ``n_rows`` source rows whose composition does not occur in the target."""
    from matxfer.transfer import composition_keys

    target = set(composition_keys(target_formulas).tolist())
    keep = np.flatnonzero([k not in target for k in composition_keys(source_formulas)])
    if n_rows and n_rows < len(keep):
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=n_rows, replace=False))
    return [source_formulas[i] for i in keep], source_y[keep]


def train_sources(name, formulas, y, args):
    """(MLP source, attention source, magpie X, attention X), cached in benches/out/encoder/sources."""
    from matxfer.nn import load_model, save_model
    from matxfer.transfer import default_source_config, pretrain_attention, pretrain_mlp

    mg, _, xa = features(formulas)
    config = default_source_config(epochs=args.source_epochs, patience=5)
    models = {}
    for arch in ("mlp", "attn"):
        path = OUT / "sources" / f"{name}_{arch}_n{len(y)}_e{args.source_epochs}"
        if path.exists():
            models[arch] = load_model(path)
            continue
        t0 = time.perf_counter()
        if arch == "mlp":
            model = pretrain_mlp(mg, y, config=config, dropout=0.1)
        else:
            model = pretrain_attention(xa, y, config=config, dropout=0.1)
        seconds = time.perf_counter() - t0
        save_model(model, path, metadata={"source": name, "rows": int(len(y)), "seconds": seconds})
        log(f"source {name}/{arch}: {len(y)} rows, {seconds:.0f} s")
        models[arch] = model
    return models["mlp"], models["attn"], mg, xa


def contenders(args, floor, refit_output_scaling=False):
    from matxfer.transfer import Delta, FineTune, FromScratch, default_target_config

    target = default_target_config(epochs=args.target_epochs, patience=15)
    common = dict(target_config=target, output_floor=floor)
    return {
        "mlp_scratch": ("mlp", lambda: FromScratch(**common)),
        "mlp_finetune": ("mlp", lambda: FineTune(refit_output_scaling=refit_output_scaling, **common)),
        "mlp_delta": ("mlp", lambda: Delta(**common)),
        "attn_scratch": ("attn", lambda: FromScratch(architecture="attention", **common)),
        "attn_finetune": ("attn", lambda: FineTune(refit_output_scaling=refit_output_scaling, **common)),
        "attn_delta": ("attn", lambda: Delta(**common)),
    }


def gbm_fit_predict(Xtr, ytr, Xte, seed=0, floor=None):
    from matxfer.transfer.heads import _threads, gbm_regressor

    model = gbm_regressor(seed)
    with _threads():
        model.fit(Xtr, ytr)
        pred = model.predict(Xte)
    return pred if floor is None else np.maximum(pred, floor)


def metrics(y, p):
    err = np.abs(np.asarray(p) - np.asarray(y))
    ss = float(np.sum((y - np.mean(y)) ** 2))
    return {"mae": float(err.mean()), "rmse": float(np.sqrt(np.mean(err**2))),
            "r2": float(1 - np.sum(err**2) / ss) if ss > 0 else float("nan")}


def run_splits(splits, data, y, sources, args, floor, keep_fits=False, refit_output_scaling=False):
    """Every contender on every (train, test) split; returns {name: [metrics per split]} and the fits."""
    from matxfer.transfer import MCDropout

    mg, mf, xa = data
    src_mlp, src_attn, Xs_mlp, Xs_attn, ys = sources
    X = {"mlp": mg, "attn": xa}
    results, fits = {}, {}
    for s, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        p = gbm_fit_predict(mf[tr], y[tr], mf[te], seed=s, floor=floor)
        results.setdefault("gbm_magpie_full", []).append({**metrics(y[te], p), "seconds": time.perf_counter() - t0})
        for name, (arch, make) in contenders(args, floor, refit_output_scaling).items():
            t0 = time.perf_counter()
            strategy = make()
            strategy.seed = s
            if not name.endswith("scratch"):
                src, Xsrc = (src_mlp, Xs_mlp) if arch == "mlp" else (src_attn, Xs_attn)
                strategy.use_source(src, Xsrc, ys)
            if name.endswith("finetune"):
                strategy = MCDropout(strategy, n_samples=30, seed=s, output_floor=floor).use_source(
                    strategy.source_model_)
            strategy.adapt(X[arch][tr], y[tr])
            rec = {**metrics(y[te], strategy.predict(X[arch][te])), "seconds": time.perf_counter() - t0}
            results.setdefault(name, []).append(rec)
            if keep_fits and s == 0:
                fits[name] = strategy
            log(f"  split {s} {name}: MAE {rec['mae']:.4f} ({rec['seconds']:.0f} s)")
        log(f"split {s} done")
    return results, fits


def summarize(results):
    out = {}
    for name, recs in results.items():
        maes = [r["mae"] for r in recs]
        out[name] = {"mae": float(np.mean(maes)), "mae_sd": float(np.std(maes, ddof=1)) if len(maes) > 1 else 0.0,
                     "r2": float(np.mean([r["r2"] for r in recs])), "seconds": float(np.sum([r["seconds"] for r in recs])),
                     "per_split_mae": maes}
    return out


def gap_data(args):
    t = read_csv("composition/experimental/expt_gap_matbench.csv")
    s = read_csv("composition/dft/mp_gap_matbench.csv")
    tf, ty = t.formula.tolist(), t.band_gap_expt_eV.to_numpy(float)
    sf, sy = clean_source(s.formula.tolist(), s.band_gap_pbe_eV.to_numpy(float), tf, args.source_rows)
    return tf, ty, sf, sy


def gap_splits(n, n_train, n_subsets):
    perm = np.random.default_rng(0).permutation(n)
    test, pool = np.sort(perm[: n // 5]), perm[n // 5 :]
    return [(np.sort(np.random.default_rng([1, r]).choice(pool, size=min(n_train, len(pool)), replace=False)), test)
            for r in range(n_subsets)]


def run_gap(args, n_train, keep_fits=False):
    tf, ty, sf, sy = gap_data(args)
    if args.quick:
        keep = np.sort(np.random.default_rng(0).choice(len(ty), 800, replace=False))
        tf, ty = [tf[i] for i in keep], ty[keep]
    src_mlp, src_attn, Xs_mlp, Xs_attn = train_sources("mp_gap_clean", sf, sy, args)
    data = features(tf)
    splits = gap_splits(len(ty), n_train, args.subsets)
    results, fits = run_splits(splits, data, ty, (src_mlp, src_attn, Xs_mlp, Xs_attn, sy), args, floor=0.0,
                               keep_fits=keep_fits)
    info = {"target_rows": len(ty), "train_rows": n_train, "test_rows": len(splits[0][1]), "source_rows": len(sy)}
    return {"info": info, "summary": summarize(results), "splits": results}, fits, (data, ty, splits)


def thermal_data(args, window=True):
    e = read_csv("composition/experimental/thermoelectric_estm.csv")
    e = e[e.thermal_conductivity_W_per_mK > 0]
    if window:
        room = e[(e.temperature_K >= 280) & (e.temperature_K <= 320)]
        per = room.groupby("formula", sort=True).thermal_conductivity_W_per_mK.mean()
        return per.index.tolist(), np.log10(per.to_numpy(float))
    return e


def run_thermal(args):
    from sklearn.model_selection import KFold

    hf, hy = thermal_data(args)
    s = read_csv("composition/dft/log10_shear_modulus_matbench.csv")
    sf, sy = clean_source(s.formula.tolist(), s.log10_G_VRH_GPa.to_numpy(float), hf, args.source_rows)
    src_mlp, src_attn, Xs_mlp, Xs_attn = train_sources("shear_clean", sf, sy, args)
    data = features(hf)
    splits = list(KFold(5, shuffle=True, random_state=18012019).split(np.arange(len(hy))))
    if args.quick:
        splits = splits[:2]
    # the source property (log10 shear modulus) has other units: fine-tuning starts from the target's scaling
    results, _ = run_splits(splits, data, hy, (src_mlp, src_attn, Xs_mlp, Xs_attn, sy), args, floor=None,
                            refit_output_scaling=True)
    info = {"target_rows": len(hy), "source_rows": len(sy), "folds": len(splits)}
    return {"info": info, "summary": summarize(results), "splits": results}


def calibration(y, mean, std):
    from matxfer.transfer import interval_calibration

    cal = interval_calibration(y, mean, std)
    err = np.abs(y - mean)
    k = max(1, len(y) // 5)
    cal["mae_top20_confident"] = float(err[np.argsort(std, kind="stable")[:k]].mean())
    cal["mae_all"] = float(err.mean())
    return cal


def run_calib(args):
    """Returns (the gap section's result, the calibration result): calib reuses the gap fits."""
    from matxfer.transfer import Ensemble, FineTune, default_target_config

    result, fits, (data, ty, splits) = run_gap(args, args.gap_rows, keep_fits=True)
    mg, _, xa = data
    tr, te = splits[0]
    out = {"info": {**result["info"], "split": 0}}
    X = {"mlp": mg, "attn": xa}
    for arch in ("mlp", "attn"):
        mc = fits[f"{arch}_finetune"]
        t0 = time.perf_counter()
        mean, std = mc.predict(X[arch][te], return_std=True)
        out[f"{arch}_mc_dropout"] = {**calibration(ty[te], mean, std), "trainings": 1,
                                     "predict_seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        target = default_target_config(epochs=args.target_epochs, patience=15)
        ens = Ensemble([FineTune(target_config=target, output_floor=0.0, seed=k) for k in range(args.ensemble)],
                       output_floor=0.0).use_source(mc.source_model_)
        ens.adapt(X[arch][tr], ty[tr])
        mean, std = ens.predict(X[arch][te], return_std=True)
        out[f"{arch}_seed_ensemble"] = {**calibration(ty[te], mean, std), "trainings": args.ensemble,
                                        "seconds": time.perf_counter() - t0}
        log(f"calib {arch}: MC {out[f'{arch}_mc_dropout']} | ensemble {out[f'{arch}_seed_ensemble']}")
    return result, out


def run_temperature(args):
    """Temperature as an input column vs the fixed 280-320 K window (held-out formulas, window rows)."""
    from sklearn.model_selection import GroupKFold

    from matxfer.transfer import FromScratch, default_target_config

    e = thermal_data(args, window=False).reset_index(drop=True)
    if args.quick:
        keep = set(sorted(set(e.formula))[:200])
        e = e[e.formula.isin(keep)].reset_index(drop=True)
    formulas = e.formula.tolist()
    T = e.temperature_K.to_numpy(float)
    y = np.log10(e.thermal_conductivity_W_per_mK.to_numpy(float))
    in_window = (T >= 280) & (T <= 320)
    _, mf, xa = features(formulas, conditions=T)
    x_frac = xa[:, :-1]
    groups = np.unique(formulas, return_inverse=True)[1]
    target = default_target_config(epochs=args.target_epochs, patience=15)
    results: dict = {}
    for f, (tr, te) in enumerate(GroupKFold(5).split(mf, y, groups)):
        te_w = te[in_window[te]]
        tr_w = tr[in_window[tr]]
        if len(te_w) == 0:
            continue
        # the window models see one row per (formula, temperature) in 280-320 K, as the window rows are
        cases = {
            "gbm_window": lambda tr_w=tr_w, te_w=te_w, f=f: gbm_fit_predict(mf[tr_w], y[tr_w], mf[te_w], seed=f),
            "gbm_with_T": lambda tr=tr, te_w=te_w, f=f: gbm_fit_predict(
                np.c_[mf[tr], T[tr]], y[tr], np.c_[mf[te_w], T[te_w]], seed=f
            ),
            "attn_window": lambda tr_w=tr_w, te_w=te_w, f=f: (
                FromScratch(architecture="attention", target_config=target, seed=f)
                .adapt(x_frac[tr_w], y[tr_w])
                .predict(x_frac[te_w])
            ),
            "attn_with_T": lambda tr=tr, te_w=te_w, f=f: (
                FromScratch(architecture="attention", target_config=target, seed=f)
                .adapt(xa[tr], y[tr])
                .predict(xa[te_w])
            ),
        }
        if args.temperature_folds and f not in args.temperature_folds:
            continue
        for name, run in cases.items():
            if name.startswith("attn") and f >= args.temperature_attention_folds:
                continue
            if args.temperature_models and name.split("_")[0] not in args.temperature_models:
                continue
            t0 = time.perf_counter()
            rec = {**metrics(y[te_w], run()), "seconds": time.perf_counter() - t0,
                   "train_rows": int(len(tr) if name.endswith("_T") else len(tr_w)), "test_rows": int(len(te_w))}
            results.setdefault(name, []).append(rec)
            log(f"  fold {f} {name}: MAE {rec['mae']:.4f} ({rec['seconds']:.0f} s, {rec['train_rows']} train rows)")
    info = {"rows": len(y), "formulas": int(groups.max() + 1), "window_rows": int(in_window.sum())}
    return {"info": info, "summary": summarize(results), "splits": results}


def table(section, res) -> str:
    if section == "calib":
        lines = [f"\n#### calib (expt_gap, {res['info']['train_rows']} training rows, {res['info']['test_rows']} test rows)",
                 "| std from | trainings | coverage 68 % | coverage 95 % | miscalibration area | MAE top-20 % confident | MAE all |",
                 "|---|---|---|---|---|---|---|"]
        for k, r in res.items():
            if not isinstance(r, dict) or k == "info":
                continue
            lines.append(f"| {k} | {r['trainings']} | {r['coverage_68']:.3f} | {r['coverage_95']:.3f} | "
                         f"{r['miscalibration_area']:.3f} | {r['mae_top20_confident']:.3f} | {r['mae_all']:.3f} |")
        return "\n".join(lines)
    info = ", ".join(f"{k} {v}" for k, v in res["info"].items())
    lines = [f"\n#### {section} ({info})", "| model | MAE (mean ± sd over splits) | R2 | vs gbm_magpie_full | seconds |",
             "|---|---|---|---|---|"]
    summary = res["summary"]
    base = summary.get("gbm_magpie_full", summary.get("gbm_window", {})).get("mae")
    for name, r in summary.items():
        ratio = f"{r['mae'] / base:.3f}" if base else ""
        lines.append(f"| {name} | {r['mae']:.4f} ± {r['mae_sd']:.4f} | {r['r2']:.3f} | {ratio} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--source-rows", type=int, default=10000)
    parser.add_argument("--source-epochs", type=int, default=15)
    parser.add_argument("--target-epochs", type=int, default=80)
    parser.add_argument("--gap-rows", type=int, default=1000)
    parser.add_argument("--subsets", type=int, default=3)
    parser.add_argument("--ensemble", type=int, default=5)
    parser.add_argument("--temperature-attention-folds", type=int, default=5,
                        help="folds of the temperature section that also train the attention models")
    parser.add_argument("--temperature-folds", type=lambda v: [int(x) for x in v.split(",")], default=None,
                        help="run only these folds of the temperature section (e.g. 1,2)")
    parser.add_argument("--temperature-models", type=lambda v: v.split(","), default=None,
                        help="run only these model families in the temperature section (gbm, attn)")
    parser.add_argument("--tag", default="", help="suffix of the JSON file names (runs split over processes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.source_rows, args.source_epochs, args.target_epochs = 1500, 3, 8
        args.gap_rows, args.subsets, args.ensemble = 200, 2, 2
    import torch

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    start = uptime()
    print(f"uptime at start: {start}")
    sections = args.sections.split(",")
    for section in sections:
        t0 = time.perf_counter()
        if section == "gap" and "calib" in sections:
            continue  # run (and written) by the calib section, which reuses its fits
        if section == "gap":
            res = run_gap(args, args.gap_rows)[0]
        elif section == "gap100":
            res = run_gap(args, 100)[0]
        elif section == "thermal":
            res = run_thermal(args)
        elif section == "calib":
            gap, res = run_calib(args)
            gap["seconds"], gap["uptime_end"] = time.perf_counter() - t0, uptime()
            (OUT / f"gap{'_quick' if args.quick else ''}.json").write_text(json.dumps(gap, indent=1))
            print(table("gap", gap), flush=True)
        elif section == "temperature":
            res = run_temperature(args)
        else:
            raise SystemExit(f"unknown section {section!r}; choose from {SECTIONS}")
        res["seconds"] = time.perf_counter() - t0
        res["uptime_end"] = uptime()
        (OUT / f"{section}{'_quick' if args.quick else ''}{args.tag}.json").write_text(json.dumps(res, indent=1))
        print(table(section, res), flush=True)
        print(f"({section}: {res['seconds']:.0f} s; uptime at end: {res['uptime_end']})", flush=True)


if __name__ == "__main__":
    main()
