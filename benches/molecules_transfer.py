"""Molecule and polymer transfer table: QM9 sources -> MoleculeNet targets, Polymer Genome, bridges.

    nice -n 10 python benches/molecules_transfer.py qm9          # QM9 (rdkit2d subset) -> ESOL / FreeSolv / Lipophilicity
    nice -n 10 python benches/molecules_transfer.py qm9_full     # all of QM9 (ECFP4 counts) -> the same targets
    nice -n 10 python benches/molecules_transfer.py chemprop     # chemprop D-MPNN (own venv) on the qm9_full splits
    nice -n 10 python benches/molecules_transfer.py freesolv_mf  # FreeSolv calc (low fidelity) -> expt
    nice -n 10 python benches/molecules_transfer.py polymer_rule # which '*' end-point rule predicts best
    nice -n 10 python benches/molecules_transfer.py polymers     # Polymer Genome multi-task, 100-row regime
    nice -n 10 python benches/molecules_transfer.py bridges      # molecule source -> polymer; composition source -> molecule
    nice -n 10 python benches/molecules_transfer.py polymers_mt  # one network over all 7 Polymer Genome properties

Descriptors: ``matxfer.molecules.featurize(..., "rdkit2d")`` (217 RDKit 2D descriptors) for every neural
model; ECFP4 (2048 bits) for the random forest / gradient boosting baselines. Source models are matxfer
descriptor MLPs with a capped epoch budget (the development machine has 2 shared CPU cores).
Model settings of the baselines and the ridge head are chosen by inner CV on the training rows only;
the MLP settings are the library defaults, fixed before any test score was seen.
Features are cached under $MATXFER_CACHE (default /tmp/matxfer_molecules_cache).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
CACHE = Path(os.environ.get("MATXFER_CACHE", "/tmp/matxfer_molecules_cache"))
OUT = HERE / "out" / "molecules"
QM9_TASKS = ("homo_lumo_gap_hartree", "Cv_cal_per_mol_K", "alpha_bohr3", "U298_hartree")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def features(name: str, smiles, preset: str, **kw) -> np.ndarray:
    """Cached ``matxfer.molecules.featurize`` (errors="raise": the shared sets all parse)."""
    import matxfer.molecules as mm

    CACHE.mkdir(parents=True, exist_ok=True)
    tag = "_".join(f"{k}{v}" for k, v in sorted(kw.items()))
    path = CACHE / f"{name}_{preset.replace(':', '-')}_{tag}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    X = mm.featurize(list(smiles), preset, **kw).values
    log(f"  featurized {name} {preset} {X.shape} in {time.perf_counter() - t0:.1f} s")
    np.save(path, X)
    return X


def load_qm9() -> pd.DataFrame:
    a = pd.read_csv(DATA / "molecules" / "qm9_cv_alpha_u298.csv.gz")
    b = pd.read_csv(DATA / "molecules" / "qm9_homo_lumo_gap.csv")
    # The two files are in different row orders and 83 SMILES repeat: join on the unique ones only.
    a = a[~a.smiles.duplicated(keep=False)]
    b = b[~b.smiles.duplicated(keep=False)]
    return a.merge(b, on="smiles", how="inner").reset_index(drop=True)


def targets():
    d = DATA / "molecules"
    esol = pd.read_csv(d / "esol_delaney.csv")
    free = pd.read_csv(d / "freesolv.csv")
    lipo = pd.read_csv(d / "lipophilicity.csv")
    return {
        "ESOL (log S)": (esol.smiles.tolist(), esol.logS_mol_per_L.to_numpy(float)),
        "FreeSolv (kcal/mol)": (free.smiles.tolist(), free.hydration_free_energy_expt_kcal_per_mol.to_numpy(float)),
        "Lipophilicity (log D)": (lipo.smiles.tolist(), lipo["logD_pH7.4"].to_numpy(float)),
    }


def single_output(source, y):
    """A copy of a multi-output source MLP with a fresh one-output head (for fine-tuning)."""
    from matxfer.nn import MLP

    a = source.init_args if hasattr(source, "init_args") else None
    model = MLP(source.n_in, a["hidden"] if a else (512, 256, 128), n_out=1)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.") and k not in ("y_mean", "y_std")}
    model.load_state_dict(state, strict=False)
    return model.fit_target_scaling(y).eval()


def inner_cv_select(make, grid, X, y, seed=0):
    """The grid value with the lowest 3-fold MAE on the training rows; then refit on all of them."""
    from sklearn.model_selection import KFold

    best, best_score = None, np.inf
    for value in grid:
        errs = []
        for tr, va in KFold(3, shuffle=True, random_state=seed).split(X):
            m = make(value).fit(X[tr], y[tr])
            errs.append(np.mean(np.abs(m.predict(X[va]) - y[va])))
        if np.mean(errs) < best_score:
            best, best_score = value, float(np.mean(errs))
    return make(best).fit(X, y), best


def rf(seed):
    from sklearn.ensemble import RandomForestRegressor

    return lambda mf: RandomForestRegressor(n_estimators=100, max_features=mf, n_jobs=1, random_state=seed)


def hgb(seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return lambda lr: HistGradientBoostingRegressor(learning_rate=lr, max_iter=200, random_state=seed)


def metrics(y, p):
    err = np.asarray(p, float) - y
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def ordered(split_list, wanted):
    """The splits named in ``wanted`` (all when empty), in the order given there."""
    if not wanted:
        return split_list
    by_name = {name: (name, tr, te) for name, tr, te in split_list}
    return [by_name[name] for name in wanted if name in by_name]


def splits(smiles, n_random):
    import matxfer.molecules as mm

    out = []
    for seed in range(n_random):
        perm = np.random.default_rng(seed).permutation(len(smiles))
        n_test = int(round(0.1 * len(smiles)))
        out.append((f"random{seed}", np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    train, valid, test = mm.scaffold_split(smiles, (0.8, 0.1, 0.1))
    out.append(("scaffold", np.sort(np.concatenate([train, valid])), test))
    return out


def pretrain_qm9(epochs: int, n_rows: int | None, hidden=(512, 256, 128), batch_size: int = 512):
    """The four-task QM9 source (gap, Cv, alpha, U298) on rdkit2d; cached with its training time."""
    from matxfer.transfer import default_source_config, pretrain_mlp

    q = load_qm9()
    if n_rows:
        q = q.sample(n=n_rows, random_state=0).reset_index(drop=True)
    X = features(f"qm9_{len(q)}", q.smiles, "rdkit2d")
    Y = q[list(QM9_TASKS)].to_numpy(float)
    shape = "-".join(str(h) for h in hidden)
    path = CACHE / f"qm9_source_{len(q)}_{epochs}_{shape}_b{batch_size}"
    if path.exists():
        from matxfer.nn.io import load_model

        return load_model(path)
    t0 = time.perf_counter()
    config = default_source_config(epochs=epochs, patience=5, batch_size=batch_size)
    model = pretrain_mlp(X, Y, hidden=tuple(hidden), config=config)
    seconds = time.perf_counter() - t0
    log(f"  QM9 source MLP ({len(q)} rows, 4 tasks, {shape}, batch {batch_size}, {epochs} epochs max) in {seconds:.0f} s")
    from matxfer.nn.io import save_model

    save_model(model, path)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{path.name}.json").write_text(json.dumps({"rows": len(q), "hidden": list(hidden), "batch_size": batch_size,
                                                       "epochs_max": epochs, "seconds": seconds}))
    return model


def section_qm9(args):
    from matxfer.transfer import FineTune, FromScratch, FrozenFeatures, TreeBaseline

    source = pretrain_qm9(args.source_epochs, args.source_rows, args.source_hidden, args.source_batch)
    rows = []
    for name, (smiles, y) in targets().items():
        if args.targets and name.split()[0].lower() not in args.targets:
            continue
        X = features(name.split()[0].lower(), smiles, "rdkit2d")
        E = features(name.split()[0].lower(), smiles, "ecfp")
        for split, tr, te in splits(smiles, args.seeds):
            res = {}
            t0 = time.perf_counter()
            res["scratch MLP"] = FromScratch(seed=0).adapt(X[tr], y[tr]).predict(X[te])
            res["QM9 frozen + ridge"] = FrozenFeatures(head="ridge").use_source(source).adapt(X[tr], y[tr]).predict(X[te])
            ft = FineTune(seed=0).use_source(single_output(source, y[tr]))
            res["QM9 fine-tune"] = ft.adapt(X[tr], y[tr]).predict(X[te])
            gb = TreeBaseline("gbm", seed=0).adapt(X[tr], y[tr])
            res[f"GB rdkit2d ({gb.best_params_})"] = gb.predict(X[te])
            m, mf = inner_cv_select(rf(0), ["sqrt", 0.1], E[tr], y[tr])
            res[f"RF ECFP4 (max_features={mf})"] = m.predict(E[te])
            if args.gb:
                m, lr = inner_cv_select(hgb(0), [0.05, 0.1], E[tr], y[tr])
                res[f"GB ECFP4 (lr={lr})"] = m.predict(E[te])
            for model, p in res.items():
                rows.append({"target": name, "split": split, "model": model.split(" (")[0], "detail": model, **metrics(y[te], p)})
            log(f"  {name} {split}: " + ", ".join(f"{k.split(' (')[0]} {metrics(y[te], p)['rmse']:.3f}" for k, p in res.items()) + f" ({time.perf_counter() - t0:.0f} s)")
            dump(args.out_name or "qm9", rows)
    table = pd.DataFrame(rows)
    table["kind"] = np.where(table.split == "scaffold", "scaffold", "random")
    summary = table.groupby(["target", "kind", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)
    print(markdown(summary))


ECFP_KW = {"counts": True, "n_bits": 1024}


def pretrain_qm9_ecfp(args):
    """The four-task QM9 source on ECFP4 counts (1024) of every QM9 molecule (133,719 unique SMILES).

    ECFP rather than rdkit2d for the full set: rdkit2d costs ~5 ms a molecule (11 CPU-minutes for
    QM9), ECFP ~0.1 ms, which is what the shared 2-core machine allowed."""
    from matxfer.transfer import default_source_config, pretrain_mlp

    q = load_qm9()
    hidden = tuple(args.source_hidden)
    shape = "-".join(str(h) for h in hidden)
    path = CACHE / f"qm9_ecfp_source_{len(q)}_{args.source_epochs}_{shape}_b{args.source_batch}"
    if path.exists():
        from matxfer.nn.io import load_model

        return load_model(path)
    X = features(f"qm9_{len(q)}", q.smiles, "ecfp", **ECFP_KW)
    Y = q[list(QM9_TASKS)].to_numpy(float)
    t0 = time.perf_counter()
    config = default_source_config(epochs=args.source_epochs, patience=5, batch_size=args.source_batch)
    model = pretrain_mlp(X, Y, hidden=hidden, config=config)
    seconds = time.perf_counter() - t0
    log(f"  QM9 ECFP source MLP ({len(q)} rows, 4 tasks, {shape}, batch {args.source_batch}, "
        f"{args.source_epochs} epochs max) in {seconds:.0f} s")
    from matxfer.nn.io import save_model

    save_model(model, path)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{path.name}.json").write_text(json.dumps({"rows": len(q), "hidden": list(hidden), "features": "ecfp4 counts 1024",
                                                       "batch_size": args.source_batch, "epochs_max": args.source_epochs,
                                                       "seconds": seconds}))
    return model


def gb_fixed(seed):
    """HistGradientBoosting with fixed settings (300 trees, learning rate 0.1, 31 leaves): no inner
    CV, to fit the CPU share of the shared machine."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(learning_rate=0.1, max_iter=300, max_leaf_nodes=31, early_stopping=False,
                                         random_state=seed)


def rf_fixed(seed):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=100, max_features="sqrt", n_jobs=1, random_state=seed)


def section_qm9_full(args):
    """Full QM9 source (ECFP4 counts) -> ESOL / FreeSolv / Lipophilicity, random x seeds + scaffold."""
    from matxfer.transfer import FineTune, FromScratch, FrozenFeatures

    source = pretrain_qm9_ecfp(args)
    hidden = tuple(args.source_hidden)

    def want(model):
        return not args.models or model in args.models

    rows = []
    for name, (smiles, y) in targets().items():
        tag = name.split()[0].lower()
        if args.targets and tag not in args.targets:
            continue
        X = features(tag, smiles, "rdkit2d")
        E = features(tag, smiles, "ecfp", **ECFP_KW)
        for split, tr, te in ordered(splits(smiles, args.seeds), args.splits):
            t0 = time.perf_counter()
            res = {}
            if want("scratch MLP rdkit2d"):
                res["scratch MLP rdkit2d"] = FromScratch(seed=0).adapt(X[tr], y[tr]).predict(X[te])
            if want("GB rdkit2d"):
                res["GB rdkit2d"] = gb_fixed(0).fit(X[tr], y[tr]).predict(X[te])
            if want("scratch MLP ECFP"):
                res["scratch MLP ECFP"] = FromScratch(seed=0, hidden=hidden).adapt(E[tr], y[tr]).predict(E[te])
            if want("QM9 frozen + ridge (ECFP)"):
                frozen = FrozenFeatures(head="ridge").use_source(source).adapt(E[tr], y[tr])
                res["QM9 frozen + ridge (ECFP)"] = frozen.predict(E[te])
            if want("QM9 fine-tune (ECFP)"):
                ft = FineTune(seed=0).use_source(single_output(source, y[tr]))
                res["QM9 fine-tune (ECFP)"] = ft.adapt(E[tr], y[tr]).predict(E[te])
            if want("RF ECFP"):
                res["RF ECFP"] = rf_fixed(0).fit(E[tr], y[tr]).predict(E[te])
            if want("GB ECFP"):
                res["GB ECFP"] = gb_fixed(0).fit(E[tr], y[tr]).predict(E[te])
            for model, p in res.items():
                rows.append({"target": name, "split": split, "model": model, **metrics(y[te], p)})
            log(f"  {name} {split}: " + ", ".join(f"{k} {metrics(y[te], p)['rmse']:.3f}" for k, p in res.items())
                + f" ({time.perf_counter() - t0:.0f} s)")
            dump(args.out_name or "qm9_full", rows)
    table = pd.DataFrame(rows)
    table["kind"] = np.where(table.split == "scaffold", "scaffold", "random")
    print(markdown(table.groupby(["target", "kind", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def section_chemprop(args):
    """chemprop's default D-MPNN (``chemprop train``, all defaults, CPU) on the same splits as ``qm9_full``.

    chemprop pins an older RDKit, so it lives in its own virtual environment (``$MATXFER_CHEMPROP``,
    default /work/chemprop-venv/bin/chemprop) and runs as a subprocess on CSV files. Its validation set
    (early stopping / best epoch) is 10 % of our training rows (seeded), as for our MLPs.
    """
    import subprocess
    import tempfile

    exe = os.environ.get("MATXFER_CHEMPROP", "/work/chemprop-venv/bin/chemprop")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    rows = []
    for name, (smiles, y) in targets().items():
        tag = name.split()[0].lower()
        if args.targets and tag not in args.targets:
            continue
        smiles = np.asarray(smiles, dtype=object)
        for split, tr, te in ordered(splits(list(smiles), args.seeds), args.splits):
            seed = int(split[-1]) if split.startswith("random") else 0
            perm = np.random.default_rng(seed).permutation(tr)
            n_val = int(round(0.1 * len(tr)))
            parts = {"train": np.sort(perm[n_val:]), "val": np.sort(perm[:n_val]), "test": te}
            with tempfile.TemporaryDirectory(prefix="chemprop_") as tmp:
                tmp = Path(tmp)
                for part, idx in parts.items():
                    pd.DataFrame({"smiles": smiles[idx], "y": y[idx]}).to_csv(tmp / f"{part}.csv", index=False)
                t0 = time.perf_counter()
                subprocess.run([exe, "train", "-i", str(tmp / "train.csv"), str(tmp / "val.csv"), str(tmp / "test.csv"),
                                "-s", "smiles", "--target-columns", "y", "-t", "regression", "-o", str(tmp / "out"),
                                "--accelerator", "cpu", "--devices", "1", "-n", "0", "--data-seed", str(seed),
                                "--pytorch-seed", str(seed)], check=True, env=env, capture_output=True)
                seconds = time.perf_counter() - t0
                model = sorted((tmp / "out").rglob("best*.pt"))[0]
                subprocess.run([exe, "predict", "-i", str(tmp / "test.csv"), "-s", "smiles", "--model-paths", str(model),
                                "-o", str(tmp / "pred.csv"), "--accelerator", "cpu", "--devices", "1", "-n", "0"],
                               check=True, env=env, capture_output=True)
                pred = pd.read_csv(tmp / "pred.csv")
                p = pred[pred.columns[-1]].to_numpy(float)
            rows.append({"target": name, "split": split, "model": "chemprop D-MPNN (defaults)", "seconds": seconds,
                         **metrics(y[te], p)})
            log(f"  chemprop {name} {split}: RMSE {rows[-1]['rmse']:.3f} MAE {rows[-1]['mae']:.3f} ({seconds:.0f} s)")
            dump(args.out_name or "chemprop", rows)
    table = pd.DataFrame(rows)
    table["kind"] = np.where(table.split == "scaffold", "scaffold", "random")
    print(markdown(table.groupby(["target", "kind", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def section_freesolv_mf(args):
    """FreeSolv: the alchemical (calculated) free energy as a low-fidelity task."""
    from matxfer.transfer import Delta, FromScratch, MultiTask, pretrain_mlp

    free = pd.read_csv(DATA / "molecules" / "freesolv.csv")
    X = features("freesolv", free.smiles, "rdkit2d")
    y = free.hydration_free_energy_expt_kcal_per_mol.to_numpy(float)
    calc = free.hydration_free_energy_calc_kcal_per_mol.to_numpy(float)
    rows = []
    for split, tr, te in splits(free.smiles.tolist(), args.seeds):
        res = {"scratch MLP": FromScratch(seed=0).adapt(X[tr], y[tr]).predict(X[te])}
        # Low fidelity known only on the training rows: a source MLP on calc, then Delta / MultiTask.
        src = pretrain_mlp(X[tr], calc[tr])
        res["Delta (calc source MLP)"] = Delta(seed=0).use_source(src).adapt(X[tr], y[tr]).predict(X[te])
        res["MultiTask (calc + expt)"] = MultiTask(seed=0).use_source(src, X[tr], calc[tr]).adapt(X[tr], y[tr]).predict(X[te])
        # Low fidelity computed for every molecule (the usual case for a simulation): a linear map.
        coef = np.polyfit(calc[tr], y[tr], 1)
        res["linear on calc (calc known for test rows)"] = np.polyval(coef, calc[te])
        res["calc as is"] = calc[te]
        for model, p in res.items():
            rows.append({"split": split, "model": model, **metrics(y[te], p)})
        dump("freesolv_mf", rows)
    table = pd.DataFrame(rows)
    table["kind"] = np.where(table.split == "scaffold", "scaffold", "random")
    print(markdown(table.groupby(["kind", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def load_polymers() -> pd.DataFrame:
    return pd.read_csv(DATA / "polymers" / "polymer_genome_multitask_kuenneth.csv")


def section_polymer_rule(args):
    """5-fold CV MAE of a random forest on ECFP4 counts for every property under every '*' rule."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    import matxfer.molecules as mm

    poly = load_polymers()
    rows = []
    for rule in ("dummy", *mm.POLYMER_RULES):
        for prop, g in poly.groupby("property", sort=True):
            kw = {} if rule == "dummy" else {"polymer": rule}
            X = features(f"poly_{prop}_{rule}", g.psmiles, "ecfp", counts=True, n_bits=1024, **kw)
            y = g.value.to_numpy(float)
            model = RandomForestRegressor(n_estimators=100, max_features="sqrt", n_jobs=1, random_state=0)
            p = cross_val_predict(model, X, y, cv=KFold(5, shuffle=True, random_state=0))
            m = metrics(y, p)
            rows.append({"rule": rule, "property": prop, "unit": g.unit.iloc[0], "n": len(g), **m, "rel_mae": m["mae"] / float(np.mean(np.abs(y - y.mean())))})
            log(f"  {rule} {prop}: MAE {m['mae']:.3f}")
        dump("polymer_rule", rows)
    table = pd.DataFrame(rows)
    wide = table.pivot(index="property", columns="rule", values="mae").round(3)
    wide["n"] = table.groupby("property").n.first()
    print(markdown(wide))
    print()
    print("mean MAE / mean absolute deviation over properties:")
    print(markdown(table.groupby("rule").rel_mae.mean().round(4)))


def _small_regime(X, E, y, source, n_train, seeds, label):
    """Test MAE over ``seeds`` random draws of ``n_train`` training rows (the rest is the test set)."""
    from matxfer.transfer import FineTune, FromScratch, FrozenFeatures

    rows = []
    for seed in range(seeds):
        perm = np.random.default_rng(seed).permutation(len(y))
        tr, te = perm[:n_train], perm[n_train:]
        res = {"scratch MLP": FromScratch(seed=seed).adapt(X[tr], y[tr]).predict(X[te])}
        if source is not None:
            res[f"{label} frozen + ridge"] = FrozenFeatures(head="ridge").use_source(source).adapt(X[tr], y[tr]).predict(X[te])
            res[f"{label} fine-tune"] = FineTune(seed=seed).use_source(single_output(source, y[tr])).adapt(X[tr], y[tr]).predict(X[te])
        m, _ = inner_cv_select(rf(seed), ["sqrt", 0.1], E[tr], y[tr], seed)
        res["RF ECFP4"] = m.predict(E[te])
        for model, p in res.items():
            rows.append({"seed": seed, "model": model, **metrics(y[te], p)})
    return rows


def section_polymers(args):
    """Polymer Genome: the largest property (Egc, chain band gap) as source for the others at 100 rows."""
    from matxfer.transfer import default_source_config, pretrain_mlp

    poly = load_polymers()
    rule = args.polymer_rule
    rows = []
    egc = poly[poly.property == "Egc"]
    X_egc = features(f"poly_Egc_{rule}", egc.psmiles, "rdkit2d", polymer=rule)
    source = pretrain_mlp(X_egc, egc.value.to_numpy(float), config=default_source_config(epochs=60, batch_size=128))
    for prop, g in poly.groupby("property", sort=True):
        if prop == "Egc":
            continue
        X = features(f"poly_{prop}_{rule}", g.psmiles, "rdkit2d", polymer=rule)
        E = features(f"poly_{prop}_{rule}", g.psmiles, "ecfp", polymer=rule)
        y = g.value.to_numpy(float)
        for r in _small_regime(X, E, y, source, 100, args.seeds, "Egc source"):
            rows.append({"property": f"{prop} ({g.unit.iloc[0]}, n={len(g)})", **r})
        log(f"  polymers {prop} done")
        dump("polymers", rows)
    table = pd.DataFrame(rows)
    print(markdown(table.groupby(["property", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def _frozen(source, X, layers="last"):
    """The source's last hidden layer and its prediction, as fixed descriptors."""
    from matxfer.transfer import FrozenFeatures

    return FrozenFeatures(layers=layers).use_source(source).transform(X)


def _bridge_rows(label, regimes, models):
    """Run ``models`` ({name: fit_predict(tr, te)}) on every (regime, seed, tr, te); one row each."""
    rows = []
    for regime, seed, tr, te, y in regimes:
        t0 = time.perf_counter()
        res = {name: fit(tr, te, seed) for name, fit in models.items()}
        for model, p in res.items():
            rows.append({"bridge": label, "regime": regime, "seed": seed, "model": model, **metrics(y[te], p)})
        log(f"  {label} {regime} seed {seed}: " + ", ".join(f"{k} {metrics(y[te], p)['mae']:.3f}" for k, p in res.items())
            + f" ({time.perf_counter() - t0:.0f} s)")
    return rows


def _regimes(y, n_small, seeds, full=True):
    out = []
    for seed in range(seeds):
        perm = np.random.default_rng(seed).permutation(len(y))
        out.append((f"{n_small} rows", seed, np.sort(perm[:n_small]), np.sort(perm[n_small:]), y))
    if full:
        for seed in range(seeds):
            perm = np.random.default_rng(seed).permutation(len(y))
            n_test = int(round(0.1 * len(y)))
            out.append(("random 90/10", seed, np.sort(perm[n_test:]), np.sort(perm[:n_test]), y))
    return out


def section_bridges(args):
    """Across domains, each against from-scratch and gradient boosting on the same descriptors.

    A. molecules -> polymers: the full QM9 four-task ECFP source (``pretrain_qm9_ecfp``) -> Polymer
       Genome Egc / Ei / Eea (repeat unit under ``--polymer-rule``), 100 training rows, the rest tested.
    B. compositions -> molecules: the shipped library model mp_e_form/formation_energy/magpie_full/mlp
       on composition:magpie_full of each molecule's formula -> ESOL / FreeSolv / Lipophilicity, at
       100 rows (and on 90/10 random splits for ``--bridge-full`` targets): (i) on the composition
       descriptors alone, (ii) its frozen features appended to rdkit2d, against rdkit2d alone.
    """
    import matxfer.library as lib
    from matxfer.transfer import FineTune, FromScratch, FrozenFeatures, TreeBaseline

    def scratch(X, hidden=(512, 256, 128)):
        return lambda tr, te, seed: FromScratch(seed=seed, hidden=hidden).adapt(X[tr], y_[0][tr]).predict(X[te])

    def gbm(X):
        return lambda tr, te, seed: TreeBaseline("gbm", seed=seed).adapt(X[tr], y_[0][tr]).predict(X[te])

    def frozen(source, X):
        return lambda tr, te, seed: FrozenFeatures(head="ridge").use_source(source).adapt(X[tr], y_[0][tr]).predict(X[te])

    def finetune(source, X):
        return lambda tr, te, seed: FineTune(seed=seed).use_source(single_output(source, y_[0][tr])).adapt(X[tr], y_[0][tr]).predict(X[te])

    def rf_ecfp(E):
        return lambda tr, te, seed: inner_cv_select(rf(seed), ["sqrt", 0.1], E[tr], y_[0][tr], seed)[0].predict(E[te])

    y_ = [None]
    rows = []
    name = args.out_name or "bridges"
    if "A" in args.bridges:
        source = pretrain_qm9_ecfp(args)
        poly = load_polymers()
        rule = args.polymer_rule
        for prop in ("Egc", "Ei", "Eea"):
            g = poly[poly.property == prop]
            X = features(f"poly_{prop}_{rule}", g.psmiles, "rdkit2d", polymer=rule)
            E = features(f"poly_{prop}_{rule}", g.psmiles, "ecfp", polymer=rule, **ECFP_KW)
            y_[0] = g.value.to_numpy(float)
            models = {"scratch MLP rdkit2d": scratch(X), "GB rdkit2d": gbm(X),
                      "scratch MLP ECFP": scratch(E, tuple(args.source_hidden)), "QM9 frozen + ridge (ECFP)": frozen(source, E),
                      "QM9 fine-tune (ECFP)": finetune(source, E), "GB ECFP": gbm(E)}
            label = f"A: QM9 -> polymer {prop} ({g.unit.iloc[0]}, n={len(g)})"
            rows += _bridge_rows(label, _regimes(y_[0], 100, args.seeds, full=False), models)
            dump(name, rows)
    if "B" in args.bridges:
        comp = lib.load("mp_e_form/formation_energy/magpie_full/mlp").to_torch()
        for key, (smiles, y) in targets().items():
            tag = key.split()[0].lower()
            Xc = features(tag, smiles, "composition:magpie_full")
            Xc = np.nan_to_num(Xc)
            X = features(tag, smiles, "rdkit2d")
            Xm = np.concatenate([X, _frozen(comp, Xc)], axis=1)
            y_[0] = y
            models = {"scratch MLP magpie_full": scratch(Xc), "MP frozen + ridge (magpie_full)": frozen(comp, Xc),
                      "MP fine-tune (magpie_full)": finetune(comp, Xc), "GB magpie_full": gbm(Xc),
                      "scratch MLP rdkit2d": scratch(X), "scratch MLP rdkit2d + MP frozen": scratch(Xm),
                      "GB rdkit2d": gbm(X), "GB rdkit2d + MP frozen": gbm(Xm)}
            full = tag in args.bridge_full
            rows += _bridge_rows(f"B: MP e_form -> {key}", _regimes(y, 100, args.seeds, full=full), models)
            dump(name, rows)
    table = pd.DataFrame(rows)
    print(markdown(table.groupby(["bridge", "regime", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def _fit_multitask(X, Y, seed):
    """One MLP with one output per column of Y (NaN = missing label, masked out of the loss), the
    target budget of the single-task models (default_target_config)."""
    import torch

    from matxfer.nn import MLP, ArrayData, Trainer
    from matxfer.transfer import default_target_config

    torch.manual_seed(seed)
    model = MLP(X.shape[1], (512, 256, 128), n_out=Y.shape[1]).fit_scaling(X).fit_target_scaling(Y)
    Trainer(default_target_config(seed=seed)).fit(model, ArrayData(X, Y))
    return model.cpu().eval()


def section_polymers_mt(args):
    """Polymer Genome: one multi-task network over all seven properties against single-task models.

    (a) 100 training rows of one property (seeds = random draws, the rest of that property is the
        test set) plus every label of the six other properties; (b) 5-fold CV over all labels.
    The multi-task network sees the other properties' labels of a test polymer, never the tested one.
    """
    from sklearn.model_selection import KFold

    from matxfer.nn import predict
    from matxfer.transfer import FromScratch

    poly = load_polymers()
    rule = args.polymer_rule
    props = sorted(poly.property.unique())
    wide = poly.pivot_table(index="psmiles", columns="property", values="value", aggfunc="mean")[props]
    units = poly.groupby("property").unit.first()
    smiles = wide.index.tolist()
    X = features(f"poly_all_{rule}", smiles, "rdkit2d", polymer=rule)
    E = features(f"poly_all_{rule}", smiles, "ecfp", polymer=rule)
    Y = wide.to_numpy(float)
    log(f"  {len(smiles)} distinct repeat units, {int(np.isfinite(Y).sum())} labels over {len(props)} properties")
    rows = []
    for j, prop in enumerate(props):
        have = np.flatnonzero(np.isfinite(Y[:, j]))
        label = f"{prop} ({units[prop]}, n={len(have)})"
        for seed in range(args.seeds):
            perm = np.random.default_rng(seed).permutation(have)
            tr, te = perm[:100], perm[100:]
            y = Y[:, j]
            res = {"single-task scratch MLP": FromScratch(seed=seed).adapt(X[tr], y[tr]).predict(X[te])}
            Ymt = Y.copy()
            Ymt[te, j] = np.nan
            res["multi-task MLP (7 properties)"] = predict(_fit_multitask(X, Ymt, seed), X[te])[:, j]
            m, _ = inner_cv_select(rf(seed), ["sqrt", 0.1], E[tr], y[tr], seed)
            res["RF ECFP4"] = m.predict(E[te])
            for model, p in res.items():
                rows.append({"regime": "100 rows", "property": label, "seed": seed, "model": model, **metrics(y[te], p)})
            log(f"  polymers_mt 100 rows {prop} seed {seed}: " + ", ".join(f"{k} {metrics(y[te], p)['mae']:.3f}" for k, p in res.items()))
            dump("polymers_mt", rows)
    # (b) 5-fold CV over repeat units: every label of the held-out units is hidden from every model.
    for fold, (tr, te) in enumerate(KFold(5, shuffle=True, random_state=0).split(X)):
        if fold >= args.folds:
            break
        Ymt = Y.copy()
        Ymt[te] = np.nan
        mt = predict(_fit_multitask(X, Ymt, fold), X[te])
        for j, prop in enumerate(props):
            tr_j = tr[np.isfinite(Y[tr, j])]
            te_j = np.isfinite(Y[te, j])
            y = Y[:, j]
            single = FromScratch(seed=fold).adapt(X[tr_j], y[tr_j]).predict(X[te][te_j])
            label = f"{prop} ({units[prop]}, n={int(np.isfinite(Y[:, j]).sum())})"
            for model, p in (("single-task scratch MLP", single), ("multi-task MLP (7 properties)", mt[te_j, j])):
                rows.append({"regime": "5-fold CV, all rows", "property": label, "seed": fold, "model": model, **metrics(y[te][te_j], p)})
        log(f"  polymers_mt fold {fold} done")
        dump("polymers_mt", rows)
    table = pd.DataFrame(rows)
    print(markdown(table.groupby(["regime", "property", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame (flat or two-level columns) as a markdown table, without the tabulate package."""
    frame = frame.reset_index()
    cols = [" ".join(str(c) for c in col if str(c)) if isinstance(col, tuple) else str(col) for col in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def dump(name, rows):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(rows, indent=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sections", nargs="+")
    parser.add_argument("--seeds", type=int, default=3, help="random splits per target")
    parser.add_argument("--source-epochs", type=int, default=20)
    parser.add_argument("--source-rows", type=int, default=None, help="QM9 subset size (default: all)")
    parser.add_argument("--polymer-rule", default="cap_h")
    parser.add_argument("--targets", nargs="*", default=None, help="qm9 section: esol freesolv lipophilicity")
    parser.add_argument("--gb", action="store_true", help="also HistGradientBoosting on ECFP4")
    parser.add_argument("--folds", type=int, default=5, help="polymers_mt: CV folds to run (of 5)")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--source-hidden", type=int, nargs="+", default=[512, 256, 128], help="QM9 source widths")
    parser.add_argument("--source-batch", type=int, default=512, help="QM9 source batch size")
    parser.add_argument("--bridges", default="AB", help="bridges section: A (QM9 -> polymers), B (MP -> molecules)")
    parser.add_argument("--bridge-full", nargs="*", default=["esol", "freesolv"], help="bridge B: targets also run on 90/10 splits")
    parser.add_argument("--splits", nargs="*", default=None, help="qm9_full / chemprop: only these splits (random0 ... scaffold)")
    parser.add_argument("--models", nargs="*", default=None, help="qm9_full: only these models (by table name)")
    parser.add_argument("--out-name", default=None, help="results file name under benches/out/molecules")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    for s in args.sections:
        print(f"\n## {s}\n", flush=True)
        globals()[f"section_{s}"](args)


if __name__ == "__main__":
    main()
