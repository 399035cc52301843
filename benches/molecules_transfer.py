"""Molecule and polymer transfer table: QM9 sources -> MoleculeNet targets, Polymer Genome, bridges.

    nice -n 10 python benches/molecules_transfer.py qm9          # QM9 -> ESOL / FreeSolv / Lipophilicity
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


def pretrain_qm9(epochs: int, n_rows: int | None):
    from matxfer.transfer import default_source_config, pretrain_mlp

    q = load_qm9()
    if n_rows:
        q = q.sample(n=n_rows, random_state=0).reset_index(drop=True)
    X = features(f"qm9_{len(q)}", q.smiles, "rdkit2d")
    Y = q[list(QM9_TASKS)].to_numpy(float)
    path = CACHE / f"qm9_source_{len(q)}_{epochs}"
    if path.exists():
        from matxfer.nn.io import load_model

        return load_model(path)
    t0 = time.perf_counter()
    model = pretrain_mlp(X, Y, config=default_source_config(epochs=epochs, patience=5))
    log(f"  QM9 source MLP ({len(q)} rows, 4 tasks, {epochs} epochs max) in {time.perf_counter() - t0:.0f} s")
    from matxfer.nn.io import save_model

    save_model(model, path)
    return model


def section_qm9(args):
    from matxfer.transfer import FineTune, FromScratch, FrozenFeatures

    source = pretrain_qm9(args.source_epochs, args.source_rows)
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
            m, mf = inner_cv_select(rf(0), ["sqrt", 0.1], E[tr], y[tr])
            res[f"RF ECFP4 (max_features={mf})"] = m.predict(E[te])
            if args.gb:
                m, lr = inner_cv_select(hgb(0), [0.05, 0.1], E[tr], y[tr])
                res[f"GB ECFP4 (lr={lr})"] = m.predict(E[te])
            for model, p in res.items():
                rows.append({"target": name, "split": split, "model": model.split(" (")[0], "detail": model, **metrics(y[te], p)})
            log(f"  {name} {split}: " + ", ".join(f"{k.split(' (')[0]} {metrics(y[te], p)['rmse']:.3f}" for k, p in res.items()) + f" ({time.perf_counter() - t0:.0f} s)")
            dump("qm9", rows)
    table = pd.DataFrame(rows)
    table["kind"] = np.where(table.split == "scaffold", "scaffold", "random")
    summary = table.groupby(["target", "kind", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)
    print(markdown(summary))


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


def section_bridges(args):
    """Across domains: QM9 (molecules) -> polymer chain band gap; MP formation energy (compositions) -> ESOL."""
    import matxfer.library as lib

    rows = []
    # 1. molecule source -> polymer property (QM9 four-task rdkit2d MLP -> Egc at 100 rows).
    source = pretrain_qm9(args.source_epochs, args.source_rows)
    poly = load_polymers()
    egc = poly[poly.property == "Egc"]
    X = features(f"poly_Egc_{args.polymer_rule}", egc.psmiles, "rdkit2d", polymer=args.polymer_rule)
    E = features(f"poly_Egc_{args.polymer_rule}", egc.psmiles, "ecfp", polymer=args.polymer_rule)
    for r in _small_regime(X, E, egc.value.to_numpy(float), source, 100, args.seeds, "QM9 source"):
        rows.append({"bridge": f"QM9 (rdkit2d) -> polymer Egc (eV), {args.polymer_rule} rule, 100 rows", **r})
    dump("bridges", rows)
    log("  bridge 1 done")
    # 2. composition source -> molecular target: the shipped library model
    # mp_e_form/formation_energy/magpie_full/mlp (MP formation energy, 20k rows) on the magpie_full
    # descriptors of each molecule's formula, -> ESOL log S and Lipophilicity log D at 100 rows.
    comp = lib.load("mp_e_form/formation_energy/magpie_full/mlp")
    comp_source = comp.to_torch()
    for key, (smiles, y) in targets().items():
        if key.startswith("FreeSolv"):
            continue
        tag = key.split()[0].lower()
        Xc = features(tag, smiles, "composition:magpie_full")
        E = features(tag, smiles, "ecfp")
        for r in _small_regime(Xc, E, y, comp_source, 100, args.seeds, "MP e_form library source"):
            rows.append({"bridge": f"MP formation energy (library, composition:magpie_full) -> {key}, 100 rows", **r})
        dump("bridges", rows)
        log(f"  bridge 2 {key} done")
    table = pd.DataFrame(rows)
    print(markdown(table.groupby(["bridge", "model"], sort=False)[["mae", "rmse"]].agg(["mean", "std"]).round(3)))


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
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    for s in args.sections:
        print(f"\n## {s}\n", flush=True)
        globals()[f"section_{s}"](args)


if __name__ == "__main__":
    main()
