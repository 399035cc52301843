"""The quantities behind the performance thresholds of the tests, over seeds (not part of the suite).

The figures beside the bounds in tests/test_transfer.py, test_transfer_tasks.py and test_nn.py come
from this script. Seed s redraws the data subsets and seeds the models; seed 0 is what the tests run.

    PYTHONPATH=$PWD/python:$PWD SEEDS=0,1,2 TORCH_THREADS=1 python benches/threshold_seeds.py transfer,tasks,nn
    PYTHONPATH=$PWD/python:$PWD SEEDS=0,1,2 TORCH_THREADS=1 python benches/threshold_seeds.py auto   # tests/test_transfer_auto.py
"""

import os
import sys
import time

import numpy as np
import torch

import matxfer
import tests.test_nn as tn
import tests.test_transfer as tt
import tests.test_transfer_tasks as ttt
from matxfer import library
from matxfer.nn import CGCNN, MLP, ArrayData, TrainConfig, Trainer, predict
from matxfer.transfer import (
    FromScratch,
    FrozenFeatures,
    MultiTask,
    TreeBaseline,
    cross_validate,
    overlap_mask,
    pretrain_mlp,
)

torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
SEEDS = tuple(int(s) for s in os.environ.get("SEEDS", "0,1,2").split(","))

sections = sys.argv[1].split(",") if len(sys.argv) > 1 else ["transfer", "tasks", "nn"]


def gap_data(seed):
    g = tt.GapData.__new__(tt.GapData)
    t_formulas, t_y = tt._read(tt.DATA / "composition/experimental/expt_gap_matbench.csv", "band_gap_expt_eV")
    s_formulas, s_y = tt._read(tt.DATA / "composition/dft/mp_gap_matbench.csv", "band_gap_pbe_eV")
    rng = np.random.default_rng(seed)
    t_idx = rng.choice(len(t_y), size=tt.N_TRAIN + tt.N_TEST, replace=False)
    g.t_formulas = [t_formulas[i] for i in t_idx]
    X, _ = matxfer.featurize(g.t_formulas, preset="magpie")
    g.X, g.y = np.asarray(X), t_y[t_idx]
    g.train, g.test = np.arange(tt.N_TRAIN), np.arange(tt.N_TRAIN, tt.N_TRAIN + tt.N_TEST)
    s_idx = rng.choice(len(s_y), size=12000, replace=False)
    s_sel = [s_formulas[i] for i in s_idx]
    keep = ~overlap_mask(s_sel, g.t_formulas)
    Xs, _ = matxfer.featurize([f for f, k in zip(s_sel, keep) if k], preset="magpie")
    g.Xs, g.ys = np.asarray(Xs), s_y[s_idx][keep]
    config = TrainConfig(epochs=12, batch_size=256, lr=2e-3, patience=None, val_fraction=0.0, device="cpu", seed=seed)
    g.source = pretrain_mlp(g.Xs, g.ys, hidden=tt.HIDDEN, config=config)
    torch.manual_seed(123 + seed)
    g.untrained = MLP(g.Xs.shape[1], tt.HIDDEN).fit_scaling(g.Xs).fit_target_scaling(g.ys).eval()
    return g


def seeded(make, seed):
    s = make()
    s.seed = seed
    return s


if "transfer" in sections:
    rows = {}
    for seed in SEEDS:
        t0 = time.time()
        g = gap_data(seed)
        scratch = tt._test_mae(seeded(lambda: FromScratch(hidden=tt.HIDDEN, target_config=tt.target_config()), seed), g)
        for name, make in tt.STRATEGIES.items():
            trained = tt._test_mae(seeded(make, seed).use_source(g.source, g.Xs, g.ys), g)
            untrained = tt._test_mae(seeded(make, seed).use_source(g.untrained, g.Xs, g.ys), g)
            rows.setdefault(name, []).append((trained, untrained, scratch))
            print(f"seed {seed} {name:24s} trained {trained:.3f} untrained {untrained:.3f} scratch {scratch:.3f} "
                  f"t/u {trained / untrained:.3f} t/s {trained / scratch:.3f}", flush=True)
        s = MultiTask(max_source_rows=4000, joint_config=tt.JOINT, hidden=tt.HIDDEN, seed=seed).use_source(g.source, g.Xs, g.ys)
        s.adapt(g.X[g.train], g.y[g.train])
        both = predict(s.target_, g.Xs[:2000])
        ratio = np.abs(both[:, 0] - g.ys[:2000]).mean() / np.abs(g.ys[:2000] - g.ys.mean()).mean()
        print(f"seed {seed} multitask source-head MAE / mean-predictor MAE {ratio:.3f}  ({time.time() - t0:.0f} s)", flush=True)
    print("summary: strategy, trained/untrained (per seed, mean, sd), trained/scratch (per seed, mean, sd)")
    for name, r in rows.items():
        tu = np.array([a / b for a, b, _ in r])
        ts = np.array([a / c for a, _, c in r])
        print(f"{name:24s} t/u {' / '.join(f'{v:.3f}' for v in tu)} mean {tu.mean():.3f} sd {(tu.std(ddof=1) if len(tu) > 1 else 0.0):.3f} | "
              f"t/s {' / '.join(f'{v:.3f}' for v in ts)} mean {ts.mean():.3f} sd {(ts.std(ddof=1) if len(ts) > 1 else 0.0):.3f}", flush=True)

if "tasks" in sections:
    for seed in SEEDS:
        t = ttt._read("composition/experimental/expt_is_metal_matbench.csv")
        lm = library.load("mp_gap/is_metal/magpie_full/mlp")
        idx = np.random.default_rng(seed).choice(len(t), 700, replace=False)
        X = np.asarray(lm.featurize(t.formula.values[idx].tolist()), dtype=np.float64)
        y = t.is_metal.to_numpy(int)[idx]
        source = lm.to_torch()
        res = cross_validate(FrozenFeatures(head="linear", seed=seed).use_source(source), X[:300], y[:300])
        res2 = cross_validate(FromScratch(hidden=(16,), target_config=ttt.FAST, task="classification", seed=seed), X[:200], y[:200],
                              baselines=(TreeBaseline("gbm", grid={"learning_rate": [0.05, 0.2]}, n_estimators=20, seed=seed),))
        (base,) = res2.baselines.values()
        print(f"seed {seed} frozen-linear CV roc_auc {res.mean('roc_auc'):.3f}  gbm-baseline CV roc_auc {base.mean('roc_auc'):.3f}", flush=True)

if "nn" in sections:
    for seed in SEEDS:
        X, y = tn._expt_gap(600, seed)
        torch.manual_seed(seed)
        model = MLP(X.shape[1], (64, 32)).fit_scaling(X).fit_target_scaling(y)
        before = np.abs(predict(model, X) - y).mean()
        Trainer(tn._config(epochs=15, seed=seed)).fit(model, ArrayData(X, y))
        after = np.abs(predict(model, X) - y).mean()
        print(f"seed {seed} MLP train MAE after/before {after / before:.3f}", flush=True)
    g = tn._graphs_from_jsonl(tn.DATA / "structures" / "perov5_valtest_cdvae.jsonl", 64)
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = CGCNN(node_dim=32, n_conv=2, hidden=(32,))
        base = float(np.abs(g.y.numpy()[:, 0] - g.y.numpy().mean()).mean())
        Trainer(tn._config(epochs=40, batch_size=16, lr=3e-3, seed=seed)).fit(model, g)
        mae = float(np.abs(predict(model, g) - g.y.numpy()[:, 0]).mean())
        print(f"seed {seed} CGCNN train MAE / mean-predictor {mae / base:.3f}", flush=True)

if "auto" in sections:
    import tests.test_transfer_auto as tau

    for seed in SEEDS:
        f_train, y_train, f_test, y_test = tau.kappa_data(seed)
        model, f_test, y_test = tau.kappa_auto(seed)
        lo, hi = model.predict_interval(f_test, 0.95)
        mean_mae = float(np.abs(y_test - y_train.mean()).mean())
        print(f"seed {seed} auto kappa test MAE {np.abs(model.predict(f_test) - y_test).mean():.3f} "
              f"cov95 {np.mean((y_test >= lo) & (y_test <= hi)):.3f} mean-predictor MAE {mean_mae:.3f} "
              f"chosen {model.report['chosen']}", flush=True)
        shuffled, f_test, y_test = tau.kappa_auto(seed, shuffle=True)
        print(f"seed {seed} auto kappa shuffled-label test MAE {np.abs(shuffled.predict(f_test) - y_test).mean():.3f}", flush=True)
        model, f_test, y_test = tau.metal_auto(seed)
        print(f"seed {seed} auto is_metal test ROC-AUC {tau.roc_auc(y_test, model.predict_proba(f_test)[:, 1]):.3f} "
              f"chosen {model.report['chosen']}", flush=True)
        shuffled, f_test, y_test = tau.metal_auto(seed, shuffle=True)
        print(f"seed {seed} auto is_metal shuffled-label ROC-AUC {tau.roc_auc(y_test, shuffled.predict_proba(f_test)[:, 1]):.3f}",
              flush=True)
