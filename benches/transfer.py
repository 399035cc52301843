"""Transfer-learning accuracy table: every strategy beside the from-scratch baseline.

    python benches/transfer.py            # full table (long: tens of minutes on 2 CPU cores)
    python benches/transfer.py --quick    # smoke run of every section on a 20k-row source slice

Sections
  gap_cv_overlap  matbench expt_gap, matbench 5-fold protocol, source = all of mp_gap
  gap_cv_clean    the same, source = mp_gap without any composition that occurs in expt_gap
  gapmf_cv_overlap, gapmf_cv_clean, gapmf_cv_scratch
                  matbench expt_gap again, with magpie_full descriptors (Ward et al. 2016: magpie plus
                  stoichiometry, valence-orbital and ionic-character features) for source and target,
                  and the stacked ensemble: mean of a 3-seed Delta-MLP ensemble and a Delta with a
                  gradient-boosted head (source prediction as a feature); the from-scratch baselines
                  (single MLP and its 3-seed ensemble, same descriptors and budget) run in
                  gapmf_cv_scratch, which needs no source
  gap_n100        100 training rows of expt_gap, >= 5 random subsets, both sources
  gap_lc          learning curves over training-set size (25 ... all), clean source
  thermal         ESTM thermal conductivity at room temperature (log10 W/m/K), 5-fold CV,
                  source = matbench log10 shear modulus (the Slack picture: stiff lattices conduct heat)
  cromel          cross-modality: perov_5 crystal graphs (heat of formation) -> Castelli perovskites that
                  are NOT in perov_5, given by formula only; against composition-only transfer from the
                  same source materials and against scratch
  is_metal, glass, uncertainty
                  classification and calibrated-uncertainty sections of issue 13: see benches/transfer_tasks.py
                  (run only when named in --sections)
  cromel_dielectric
                  cross-modality across chemistries: 1,296 MP structures with DFPT dielectric constants
                  (source property ln eps_electronic) -> matbench refractive index of the 3,625 compositions
                  that are not among the source materials, formula only; same contenders

Descriptors: matxfer.featurize(preset="magpie") for every data set (gapmf_*: preset="magpie_full"). Every transfer strategy
is adapted on exactly the rows the baseline sees, with the same target training budget.
Results go to benches/out/transfer/ (JSON, PNG); the markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
OUT = HERE / "out" / "transfer"
SECTIONS = ("gap_cv_overlap", "gap_cv_clean", "gapmf_cv_overlap", "gapmf_cv_clean", "gapmf_cv_scratch", "gap_n100",
            "gap_lc", "thermal", "cromel", "cromel_dielectric")


def read_csv(path, value_columns):
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in value_columns}, dtype={"formula": str})


def featurize(formulas, preset="magpie"):
    import matxfer

    X, _ = matxfer.featurize(list(formulas), preset=preset)
    return np.asarray(X, dtype=np.float64)


def load_gap():
    t = read_csv(DATA / "composition/experimental/expt_gap_matbench.csv", ["band_gap_expt_eV"])
    s = read_csv(DATA / "composition/dft/mp_gap_matbench.csv", ["band_gap_pbe_eV"])
    return t.formula.tolist(), t.band_gap_expt_eV.to_numpy(float), s.formula.tolist(), s.band_gap_pbe_eV.to_numpy(float)


def load_thermal():
    e = read_csv(
        DATA / "composition/experimental/thermoelectric_estm.csv", ["temperature_K", "thermal_conductivity_W_per_mK"]
    )
    room = e[(e.temperature_K >= 280) & (e.temperature_K <= 320) & (e.thermal_conductivity_W_per_mK > 0)]
    per_formula = room.groupby("formula", sort=True).thermal_conductivity_W_per_mK.mean()
    s = read_csv(DATA / "composition/dft/log10_shear_modulus_matbench.csv", ["log10_G_VRH_GPa"])
    return (
        per_formula.index.tolist(),
        np.log10(per_formula.to_numpy(float)),
        s.formula.tolist(),
        s.log10_G_VRH_GPa.to_numpy(float),
    )


def configs(quick: bool):
    from matxfer.transfer import default_joint_config, default_source_config, default_target_config

    source = default_source_config(epochs=5 if quick else 30)
    target = default_target_config()
    joint = default_joint_config(epochs=6 if quick else 40)
    return source, target, joint


def strategies(quick: bool, floor):
    """name -> factory; every factory builds an un-pretrained strategy."""
    from matxfer.transfer import (
        Delta,
        Ensemble,
        FineTune,
        FromScratch,
        FrozenFeatures,
        LatentVariable,
        MultiTask,
    )

    _, target, joint = configs(quick)
    common = dict(target_config=target, output_floor=floor)
    return {
        "scratch": lambda: FromScratch(**common),
        "frozen_ridge": lambda: FrozenFeatures(head="ridge", **common),
        "frozen_mlp": lambda: FrozenFeatures(head="mlp", include_descriptors=True, **common),
        "finetune": lambda: FineTune(**common),
        "finetune_freeze1": lambda: FineTune(freeze_first=1, layer_lr_decay=0.5, **common),
        "multitask": lambda: MultiTask(joint_config=joint, **common),
        "latent": lambda: LatentVariable(joint_config=joint, **common),
        "delta": lambda: Delta(**common),
        "ensemble": lambda: Ensemble([Delta(**common), FineTune(**common)], output_floor=floor),
    }


#: strategies run through full cross-validation (the variants below are covered in the 100-row regime)
CV_STRATEGIES = ("scratch", "frozen_ridge", "finetune", "multitask", "latent", "delta")
#: "ensemble4" = Ensemble of the four network strategies, derived from their CV predictions
ENSEMBLE4 = ("finetune", "multitask", "latent", "delta")


#: gapmf_*: members run through CV (seeds 0..N_SEEDS-1 of the MLP strategies) and the ensembles derived
#: from their out-of-fold predictions (nested means; members are floored at 0 eV before averaging, as
#: inside an ``Ensemble``).
N_SEEDS = 3
MF_TRANSFER = ("finetune", *(f"delta_s{k}" for k in range(N_SEEDS)), "delta_gbm")
MF_SCRATCH = tuple(f"scratch_s{k}" for k in range(N_SEEDS))
MF_DERIVED = {
    "scratch_x3": (MF_SCRATCH,),
    "delta_x3": (tuple(f"delta_s{k}" for k in range(N_SEEDS)),),
    # = Ensemble([Ensemble([Delta(seed=k) for k in range(3)]), Delta(head="gbm")])
    "stack": (tuple(f"delta_s{k}" for k in range(N_SEEDS)), ("delta_gbm",)),
}
#: median of the scratch seeds: robust to one diverged seed (added after seed 2 blew up on one fold, see RESULTS.md)
MF_MEDIAN = {"scratch_median3": MF_SCRATCH}
MF_ROWS = ("scratch_s0", "scratch_x3", "scratch_median3", "finetune", "delta_s0", "delta_x3", "delta_gbm", "stack")


def mf_strategies(quick: bool, floor=0.0):
    """name -> factory for the gapmf_* sections (same target budget as every other section)."""
    from matxfer.transfer import Delta, FineTune, FromScratch

    _, target, _ = configs(quick)
    common = dict(target_config=target, output_floor=floor)
    out = {"finetune": lambda: FineTune(**common), "delta_gbm": lambda: Delta(head="gbm", **common)}
    for k in range(N_SEEDS):
        out[f"scratch_s{k}"] = lambda k=k: FromScratch(seed=k, **common)
        out[f"delta_s{k}"] = lambda k=k: Delta(seed=k, **common)
    return out


def derived_from_members(results, groups, y, cv, note, inner=np.mean):
    """CV metrics of a nested ensemble: mean over ``groups`` of ``inner`` (mean or median) over each group."""
    from matxfer.transfer import regression_metrics

    pred = np.mean([inner([np.array(results[m]["predictions"]) for m in g], axis=0) for g in groups], axis=0)
    folds = [regression_metrics(y[test], pred[test]) for _, test in cv.split(np.zeros((len(y), 1)))]
    maes = [f["mae"] for f in folds]
    summary = {m: float(np.mean([f[m] for f in folds])) for m in ("mae", "rmse", "r2")}
    return {**summary, "mae_std": float(np.std(maes)), "folds": folds, "predictions": pred.tolist(), "note": note}


def ensemble_from_members(results, members, y, cv):
    """CV of ``Ensemble([Delta(), FineTune()])`` without retraining: members are adapted on the same
    folds with the same seeds (deterministic on CPU), so the ensemble's out-of-fold prediction is
    exactly the mean of theirs."""
    from matxfer.transfer import regression_metrics

    pred = np.mean([np.array(results[m]["predictions"]) for m in members], axis=0)
    folds = [regression_metrics(y[test], pred[test]) for _, test in cv.split(np.zeros((len(y), 1)))]
    maes = [f["mae"] for f in folds]
    summary = {m: float(np.mean([f[m] for f in folds])) for m in ("mae", "rmse", "r2")}
    return {**summary, "mae_std": float(np.std(maes)), "seconds": sum(results[m]["seconds"] for m in members),
            "folds": folds, "predictions": pred.tolist(), "note": "mean of " + " + ".join(members)}


def pretrained_source(name, X, y, config, retrain=False):
    """Train (or load the cached) source MLP for one source data set."""
    from matxfer.nn import load_model, save_model
    from matxfer.transfer import pretrain_mlp

    key = f"{name}_n{len(y)}_e{config.epochs}_s{config.seed}"
    path = OUT / "sources" / key
    if path.exists() and not retrain:
        return load_model(path)
    t0 = time.perf_counter()
    model = pretrain_mlp(X, y, config=config)
    save_model(model, path, metadata={"source": name, "rows": int(len(y)), "seconds": time.perf_counter() - t0})
    print(f"[source] {key}: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return model


#: sections that train their own source models (no pretrained composition source needed)
OWN_SOURCES = ("cromel", "cromel_dielectric", "gapmf_cv_scratch")


def prepare(quick: bool, retrain: bool, train_sources: bool = True):
    """Featurise everything and pretrain the source MLPs shared by the sections (skipped with
    ``train_sources=False`` when only sections of OWN_SOURCES run)."""
    from matxfer.transfer import composition_keys

    source_cfg, _, _ = configs(quick)
    tf, ty, sf, sy = load_gap()
    if quick:  # a seeded 20k-row slice of the source keeps the smoke run short
        keep = np.sort(np.random.default_rng(0).choice(len(sy), size=20000, replace=False))
        sf, sy = [sf[i] for i in keep], sy[keep]
    Xt, Xs = featurize(tf), featurize(sf)
    target_keys = set(composition_keys(tf).tolist())
    source_keys = composition_keys(sf)
    overlap = np.array([k in target_keys for k in source_keys])
    n_target_in_source = len(target_keys & set(source_keys.tolist()))
    hf, hy, gf, gy = load_thermal()
    Xh, Xg = featurize(hf), featurize(gf)
    thermal_keys = set(composition_keys(hf).tolist())
    g_overlap = np.array([k in thermal_keys for k in composition_keys(gf)])
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / f"arrays{'_quick' if quick else ''}.npz", Xt=Xt, ty=ty, Xs=Xs, sy=sy, overlap=overlap, Xh=Xh, hy=hy, Xg=Xg, gy=gy,
             g_overlap=g_overlap)
    info = {
        "expt_gap_rows": len(ty),
        "mp_gap_rows": len(sy),
        "expt_gap_compositions_in_mp_gap": int(n_target_in_source),
        "mp_gap_rows_removed_for_clean_source": int(overlap.sum()),
        "thermal_rows": len(hy),
        "shear_rows": len(gy),
        "shear_rows_removed_for_clean_source": int(g_overlap.sum()),
    }
    Xt_mf, Xs_mf = featurize(tf, "magpie_full"), featurize(sf, "magpie_full")
    np.savez(OUT / f"arrays_magpie_full{'_quick' if quick else ''}.npz", Xt=Xt_mf, Xs=Xs_mf)
    if not train_sources:
        return info
    pretrained_source("mp_gap_all", Xs, sy, source_cfg, retrain)
    pretrained_source("mp_gap_clean", Xs[~overlap], sy[~overlap], source_cfg, retrain)
    pretrained_source("shear_clean", Xg[~g_overlap], gy[~g_overlap], source_cfg, retrain)
    pretrained_source("mp_gap_all_magpie_full", Xs_mf, sy, source_cfg, retrain)
    pretrained_source("mp_gap_clean_magpie_full", Xs_mf[~overlap], sy[~overlap], source_cfg, retrain)
    return info


def _load(quick):
    from matxfer.nn import load_model

    a = dict(np.load(OUT / f"arrays{'_quick' if quick else ''}.npz"))
    source_cfg, _, _ = configs(quick)

    def source(name, n):
        return load_model(OUT / "sources" / f"{name}_n{n}_e{source_cfg.epochs}_s{source_cfg.seed}")

    return a, source


def run_section(section: str, quick: bool, threads: int):
    import torch

    from matxfer.transfer import cross_validate, learning_curve, matbench_kfold

    torch.set_num_threads(threads)
    a, source = _load(quick)
    ov = a["overlap"].astype(bool)
    gap_sources = {} if section in OWN_SOURCES else {
        "overlap": (source("mp_gap_all", len(a["sy"])), a["Xs"], a["sy"]),
        "clean": (source("mp_gap_clean", int((~ov).sum())), a["Xs"][~ov], a["sy"][~ov]),
    }
    t0 = time.perf_counter()
    results = {"section": section}
    folds = matbench_kfold()

    class FirstFolds:  # --quick: the first two matbench folds only
        def split(self, X):
            return list(folds.split(X))[:2]

    cv = FirstFolds() if quick else folds
    factories = strategies(quick, floor=0.0)
    if section in ("gap_cv_overlap", "gap_cv_clean"):
        model, Xs, ys = gap_sources[section.rsplit("_", 1)[1]]
        for name in CV_STRATEGIES:
            r = cross_validate(factories[name]().use_source(model, Xs, ys), a["Xt"], a["ty"], cv=cv, name=name)
            results[name] = {**r.summary(), "folds": r.folds, "predictions": r.predictions.tolist()}
            print(f"[{section}] {name}: MAE {r.mean():.4f} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)
        results["ensemble"] = ensemble_from_members(results, ("delta", "finetune"), a["ty"], cv)
    elif section.startswith("gapmf_cv_"):
        mf = dict(np.load(OUT / f"arrays_magpie_full{'_quick' if quick else ''}.npz"))
        variant = section.rsplit("_", 1)[1]
        factories = mf_strategies(quick)
        if variant == "scratch":
            model, Xs, ys, names = None, None, None, MF_SCRATCH
        else:
            keep = np.ones(len(ov), bool) if variant == "overlap" else ~ov
            model = source(f"mp_gap_{'all' if variant == 'overlap' else 'clean'}_magpie_full", int(keep.sum()))
            Xs, ys, names = mf["Xs"][keep], a["sy"][keep], MF_TRANSFER
        for name in names:
            strategy = factories[name]() if model is None else factories[name]().use_source(model, Xs, ys)
            r = cross_validate(strategy, mf["Xt"], a["ty"], cv=cv, name=name)
            results[name] = {**r.summary(), "folds": r.folds, "predictions": r.predictions.tolist()}
            print(f"[{section}] {name}: MAE {r.mean():.4f} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)
    elif section == "gap_n100":
        n_repeats = 2 if quick else 5
        for variant, (model, Xs, ys) in gap_sources.items():
            for name, make in factories.items():
                if variant == "clean" and name == "scratch":
                    results[f"{name}|{variant}"] = results[f"{name}|overlap"]
                    continue
                curve = learning_curve(make().use_source(model, Xs, ys), a["Xt"], a["ty"], sizes=(100,),
                                       n_repeats=n_repeats, seed=0, name=name)
                results[f"{name}|{variant}"] = curve
                print(f"[{section}] {name} ({variant}): MAE {curve['mae'][0]:.4f}", file=sys.stderr, flush=True)
    elif section == "gap_lc":
        model, Xs, ys = gap_sources["clean"]
        sizes = (50, 200) if quick else (25, 50, 100, 200, 500, None)
        n_repeats = 2 if quick else 5
        for name in ("scratch", "frozen_ridge", "delta"):
            curve = learning_curve(factories[name]().use_source(model, Xs, ys), a["Xt"], a["ty"], sizes=sizes,
                                   n_repeats=n_repeats, seed=0, name=name)
            results[name] = curve
            print(f"[{section}] {name}: {dict(zip(curve['sizes'], np.round(curve['mae'], 4)))}", file=sys.stderr,
                  flush=True)
    elif section == "thermal":
        gov = a["g_overlap"].astype(bool)
        model = source("shear_clean", int((~gov).sum()))
        thermal = strategies(quick, floor=None)
        for name in CV_STRATEGIES:
            r = cross_validate(thermal[name]().use_source(model, a["Xg"][~gov], a["gy"][~gov]), a["Xh"], a["hy"],
                               cv=cv, name=name)
            results[name] = {**r.summary(), "folds": r.folds, "predictions": r.predictions.tolist()}
            print(f"[{section}] {name}: MAE {r.mean():.4f} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)
        results["ensemble"] = ensemble_from_members(results, ("delta", "finetune"), a["hy"], cv)
    elif section == "cromel":
        results.update(run_cromel(quick))
    elif section == "cromel_dielectric":
        results.update(run_cromel_dielectric(quick))
    else:
        raise ValueError(f"unknown section {section!r}")
    results["seconds"] = time.perf_counter() - t0
    with open(OUT / f"{section}{'_quick' if quick else ''}.json", "w") as fh:
        json.dump(results, fh)
    return section


def cross_modality_curves(records, y_source, X_target, y_target, quick: bool, sizes=(100, 500)):
    """Learning curves on a formula-only target of CroMEL (structure encoder trained on ``records``
    with ``y_source``, composition encoder aligned to it) against scratch and against the
    composition-only alternative: an MLP pretrained on the *same* source materials' formulas."""
    from matxfer.nn import TrainConfig
    from matxfer.transfer import (
        CrossModality,
        FineTune,
        FromScratch,
        FrozenFeatures,
        learning_curve,
        pretrain_mlp,
    )

    graphs = crystal_graphs(records)
    X_source = featurize([r["formula"] for r in records])
    _, target_cfg, _ = configs(quick)
    source_cfg = TrainConfig(epochs=5 if quick else 60, batch_size=128, lr=2e-3, patience=10, val_fraction=0.1)
    t0 = time.perf_counter()
    comp_source = pretrain_mlp(X_source, y_source, config=source_cfg)
    structure_cfg = TrainConfig(epochs=3 if quick else 40, batch_size=64, lr=2e-3, patience=8, val_fraction=0.1)
    common = dict(embedding_dim=64, graph_kwargs={"node_dim": 64, "n_conv": 3, "cutoff": 5.0},
                  structure_config=structure_cfg, align_epochs=5 if quick else 60, target_config=target_cfg)
    paired = CrossModality(alignment="paired", **common).pretrain(X_source, y_source, graphs=graphs)
    wasserstein = CrossModality(alignment="wasserstein", **common).pretrain(
        X_source, y_source, graphs=graphs, structure_encoder=paired.structure_encoder_)
    paired_ridge = paired.fresh()
    paired_ridge.head = "ridge"
    out = {"n_source_structures": len(records), "n_target_pool": int(len(y_target)),
           "n_source_edges": int(graphs.edge_index.shape[1]),
           "pretrain_seconds": time.perf_counter() - t0}
    contenders = {
        "scratch": FromScratch(target_config=target_cfg),
        "comp_source_finetune": FineTune(target_config=target_cfg).use_source(comp_source),
        "comp_source_frozen_ridge": FrozenFeatures(target_config=target_cfg).use_source(comp_source),
        "cromel_paired_finetune": paired,
        "cromel_paired_ridge": paired_ridge,
        "cromel_wasserstein_finetune": wasserstein,
    }
    sizes = sizes if not quick else sizes[:1]
    for name, strategy in contenders.items():
        curve = learning_curve(strategy, X_target, y_target, sizes=sizes, n_repeats=2 if quick else 3, seed=0,
                               name=name)
        out[name] = curve
        print(f"[cross-modality] {name}: {dict(zip(curve['sizes'], np.round(curve['mae'], 4)))}", file=sys.stderr,
              flush=True)
    return out


def crystal_graphs(records, cutoff=5.0):
    """Crystal graphs of the source records (exact periodic radius graph, matxfer's builder)."""
    from matxfer.nn import GraphData
    from matxfer.structures import StructureBatch

    return GraphData.from_structures(StructureBatch.from_structures(records), cutoff)


def _jsonl(name):
    with open(DATA / "structures" / name) as fh:
        return [json.loads(line) for line in fh]


def run_cromel(quick: bool):
    """perov_5 structures (heat of formation) -> Castelli perovskites absent from perov_5, formula only."""
    from matxfer.transfer import composition_keys

    records = _jsonl("perov5_valtest_cdvae.jsonl")
    # every perov_5 material (val+test, not only the sampled ones) is removed from the target
    all_perov5 = set(composition_keys([r["formula"] for r in records]).tolist())
    rng = np.random.default_rng(0)
    n_source = 800 if quick else 4000
    records = [records[i] for i in np.sort(rng.choice(len(records), size=n_source, replace=False))]
    y_source = np.array([r["heat_all"] for r in records], float)
    castelli = read_csv(DATA / "composition/dft/perovskites_castelli_matbench.csv", ["heat_of_formation_eV_per_cell"])
    keys = composition_keys(castelli.formula.tolist())
    pool = np.flatnonzero([k not in all_perov5 for k in keys])
    pool = np.sort(rng.choice(pool, size=min(3000, len(pool)), replace=False))
    X_target = featurize(castelli.formula.iloc[pool].tolist())
    y_target = castelli.heat_of_formation_eV_per_cell.to_numpy(float)[pool]
    return cross_modality_curves(records, y_source, X_target, y_target, quick)


def run_cromel_dielectric(quick: bool):
    """1,296 MP structures with DFPT dielectric constants (source: ln eps_electronic) -> matbench
    refractive index of the compositions that are NOT among the source materials, formula only."""
    from matxfer.transfer import composition_keys

    records = _jsonl("mp_phonon_dielectric_matminer.jsonl")
    if quick:
        records = records[::3]
    y_source = np.log(np.array([r["eps_electronic"] for r in records], float))
    source_keys = set(composition_keys([r["formula"] for r in records]).tolist())
    target = read_csv(DATA / "composition/dft/dielectric_matbench.csv", ["refractive_index"])
    keys = composition_keys(target.formula.tolist())
    pool = np.flatnonzero([k not in source_keys for k in keys])
    X_target = featurize(target.formula.iloc[pool].tolist())
    y_target = target.refractive_index.to_numpy(float)[pool]
    return cross_modality_curves(records, y_source, X_target, y_target, quick)


def report(quick: bool, info: dict) -> str:
    from matxfer.transfer import learning_curve_plot, matbench_kfold, parity_plot

    suffix = "_quick" if quick else ""
    res = {}
    for s in SECTIONS:
        p = OUT / f"{s}{suffix}.json"
        if p.exists():
            res[s] = json.loads(p.read_text())
    a = dict(np.load(OUT / f"arrays{'_quick' if quick else ''}.npz"))
    lines = []
    names = list(strategies(quick, 0.0)) + ["ensemble4"]
    folds = matbench_kfold()

    class FirstFolds:
        def split(self, X):
            return list(folds.split(X))[:2]

    cv = FirstFolds() if quick else folds
    for s, y in (("gap_cv_overlap", a["ty"]), ("gap_cv_clean", a["ty"]), ("thermal", a["hy"])):
        if s in res and all(m in res[s] for m in ENSEMBLE4):
            res[s]["ensemble4"] = ensemble_from_members(res[s], ENSEMBLE4, y, cv)
    lines.append(f"Data: {json.dumps(info)}" if info else "")
    if "gap_cv_overlap" in res or "gap_cv_clean" in res:
        lines += [
            "",
            "### matbench expt_gap (MAE in eV; matbench 5-fold protocol" + (", first 2 folds only)" if quick else ")"),
            "",
            "| strategy | MAE, source incl. overlap | MAE, source w/o overlap | RMSE (w/o overlap) | R2 (w/o overlap) "
            "| 100 rows, incl. overlap | 100 rows, w/o overlap |",
            "|---|---|---|---|---|---|---|",
        ]
        n100 = res.get("gap_n100", {})
        for n in names:
            o, c = res.get("gap_cv_overlap", {}).get(n), res.get("gap_cv_clean", {}).get(n)
            no, nc = n100.get(f"{n}|overlap"), n100.get(f"{n}|clean")

            def fmt(r, key="mae"):
                return f"{r[key]:.4f} ± {r['mae_std']:.4f}" if r and key == "mae" else (f"{r[key]:.4f}" if r else "-")

            def fmt100(r):
                return f"{r['mae'][0]:.4f} ± {r['mae_std'][0]:.4f}" if r else "-"

            lines.append(f"| {n} | {fmt(o)} | {fmt(c)} | {fmt(c, 'rmse')} | {fmt(c, 'r2')} | {fmt100(no)} | {fmt100(nc)} |")
        if n100:
            base = n100["scratch|overlap"]["mae"][0]
            for variant in ("overlap", "clean"):
                best = min((k for k in n100 if k.endswith(variant) and not k.startswith("scratch")),
                           key=lambda k: n100[k]["mae"][0])
                ratio = n100[best]["mae"][0] / base
                lines.append(f"\n100-row regime, source {variant}: best = {best.split('|')[0]}, "
                             f"MAE ratio to scratch = {ratio:.3f} (target <= 0.75)")
        for s in ("gap_cv_overlap", "gap_cv_clean"):
            if s in res:
                best = min((n for n in names if n in res[s]), key=lambda n: res[s][n]["mae"])
                parity_plot(a["ty"], np.array(res[s][best]["predictions"]), str(OUT / f"parity_{s}_{best}.png"),
                            title=f"expt_gap, {best} ({s.split('_')[-1]} source), matbench CV", unit="eV")
                parity_plot(a["ty"], np.array(res[s]["scratch"]["predictions"]), str(OUT / f"parity_{s}_scratch.png"),
                            title="expt_gap, from scratch, matbench CV", unit="eV")
    if any(s in res for s in ("gapmf_cv_overlap", "gapmf_cv_clean", "gapmf_cv_scratch")):
        lines += mf_report(res, a["ty"], cv, quick)
    if "gap_lc" in res:
        curves = {k: v for k, v in res["gap_lc"].items() if isinstance(v, dict)}
        learning_curve_plot(curves, str(OUT / "learning_curve_expt_gap.png"),
                            title="expt_gap, source mp_gap w/o overlap", unit="eV")
        sizes = next(iter(curves.values()))["sizes"]
        lines += ["", "### expt_gap learning curve (test MAE, eV; mean ± std over random subsets; clean source)", "",
                  "| strategy | " + " | ".join(str(s) for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
        for n, c in curves.items():
            lines.append(f"| {n} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(c["mae"], c["mae_std"])) + " |")
    titles = {
        "cromel": "{n} perov_5 structures (heat of formation, eV/cell) -> Castelli perovskites absent from perov_5, "
                  "formula only (test MAE, eV/cell",
        "cromel_dielectric": "{n} MP structures (DFPT, source ln eps_electronic) -> matbench refractive index of "
                             "compositions absent from the source, formula only (test MAE, refractive index",
    }
    for key, title in titles.items():
        if key not in res:
            continue
        c = res[key]
        curves = {k: v for k, v in c.items() if isinstance(v, dict)}
        sizes = next(iter(curves.values()))["sizes"]
        lines += ["", f"### Cross-modality (CroMEL-style): {title.format(n=c['n_source_structures'])}; "
                  "mean ± std over random training subsets)", "",
                  "| strategy | " + " | ".join(f"n={s}" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
        for n, cv_ in curves.items():
            lines.append(f"| {n} | " + " | ".join(f"{m:.3f} ± {s_:.3f}" for m, s_ in zip(cv_["mae"], cv_["mae_std"]))
                         + " |")
    if "thermal" in res:
        t = res["thermal"]
        lines += ["", "### ESTM thermal conductivity at 280-320 K (MAE in log10 W/m/K; 5-fold KFold seed 18012019; "
                  "source: matbench log10 shear modulus w/o overlap)", "", "| strategy | MAE | RMSE | R2 |",
                  "|---|---|---|---|"]
        for n in names:
            if n in t:
                lines.append(f"| {n} | {t[n]['mae']:.4f} ± {t[n]['mae_std']:.4f} | {t[n]['rmse']:.4f} | {t[n]['r2']:.3f} |")
    return "\n".join(lines)


def mf_report(res, y, cv, quick):
    """Table of the gapmf_* sections: scratch rows beside every transfer row, both sources."""
    from matxfer.transfer import parity_plot

    scratch = res.get("gapmf_cv_scratch", {})
    tables = {}
    for variant in ("overlap", "clean"):
        r = {**scratch, **res.get(f"gapmf_cv_{variant}", {})}
        for name, groups in MF_DERIVED.items():
            if all(m in r for g in groups for m in g):
                r[name] = derived_from_members(r, groups, y, cv, " + ".join("mean(" + ", ".join(g) + ")" for g in groups))
        for name, members in MF_MEDIAN.items():
            if all(m in r for m in members):
                r[name] = derived_from_members(r, (members,), y, cv, "median(" + ", ".join(members) + ")", np.median)
        tables[variant] = r
    lines = ["", "### matbench expt_gap, magpie_full descriptors (MAE in eV; matbench 5-fold protocol"
             + (", first 2 folds only)" if quick else ")"), "",
             "| strategy | MAE, source incl. overlap | MAE, source w/o overlap | RMSE (w/o overlap) | R2 (w/o overlap) |",
             "|---|---|---|---|---|"]
    for n in MF_ROWS:
        o, c = tables["overlap"].get(n), tables["clean"].get(n)
        if not (o or c):
            continue
        mae = [f"{r['mae']:.4f} ± {r['mae_std']:.4f}" if r else "-" for r in (o, c)]
        lines.append(f"| {n} | {mae[0]} | {mae[1]} | {c['rmse']:.4f} | {c['r2']:.4f} |" if c else
                     f"| {n} | {mae[0]} | {mae[1]} | - | - |")
    for variant, r in tables.items():
        if "stack" in r:
            parity_plot(y, np.array(r["stack"]["predictions"]), str(OUT / f"parity_gapmf_cv_{variant}_stack.png"),
                        title=f"expt_gap, stack, magpie_full ({variant} source), matbench CV", unit="eV")
        if "stack" in r and "scratch_median3" in r:
            lines.append(f"\nsource {variant}: stack {r['stack']['mae']:.4f} eV vs scratch_s0 {r['scratch_s0']['mae']:.4f} eV "
                         f"and scratch_median3 {r['scratch_median3']['mae']:.4f} eV (ratio "
                         f"{r['stack']['mae'] / r['scratch_median3']['mae']:.3f}); per-fold stack MAE: "
                         + ", ".join(f"{f['mae']:.3f}" for f in r["stack"]["folds"]))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke run of every section")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS))
    parser.add_argument("--jobs", type=int, default=1, help="sections run in parallel processes (1 thread each)")
    parser.add_argument("--retrain", action="store_true", help="retrain the cached source models")
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from saved section results")
    args, rest = parser.parse_known_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    # issue 13 sections (classification, uncertainty) live in transfer_tasks.py and need no DFT source training
    import transfer_tasks

    own = [s for s in sections if s in transfer_tasks.SECTIONS]
    if own:
        flags = (["--quick"] if args.quick else []) + (["--report-only"] if args.report_only else [])
        transfer_tasks.main(["--sections", ",".join(own), *flags])
        sections = [s for s in sections if s not in own]
        if not sections:
            return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    t0 = time.perf_counter()
    info_path = OUT / "info.json"
    if not args.report_only:
        info = prepare(args.quick, args.retrain, train_sources=any(s not in OWN_SOURCES for s in sections))
        info_path.write_text(json.dumps(info))
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for done in pool.map(run_section, sections, [args.quick] * len(sections), [1] * len(sections)):
                    print(f"[done] {done}", file=sys.stderr, flush=True)
        else:
            import torch

            for s in sections:
                run_section(s, args.quick, torch.get_num_threads())
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    print(report(args.quick, info))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; plots and JSON in {OUT})")


if __name__ == "__main__":
    main()
