"""Several computed band-gap fidelities as source tasks for experimental band gaps (issue 13, item 3).

    nice -n 5 env OMP_NUM_THREADS=1 python benches/multifidelity_gap.py            # 5 folds, seed 0
    python benches/multifidelity_gap.py --folds 0,1 --seeds 0 1                     # a subset
    python benches/multifidelity_gap.py --quick                                     # smoke run (minutes)
    python benches/multifidelity_gap.py --merge                                     # one table of all saved runs

Source tasks, keyed by reduced composition (mean per composition within each set), with every
composition of expt_gap removed from all of them (no source/target overlap): MP PBE gaps (matbench
mp_gap) and JARVIS OptB88vdW and TBmBJ gaps (jarvis_dft_3d_composition). (The MEGNet multi-fidelity
set in ../shared has PBE/HSE/GLLB-SC/SCAN gaps, but keyed by Materials Project ids without formulas
or structures, so a composition model cannot use it.) Source network: a magpie_full MLP (256-128)
trained on every clean MP-gap row, the same network as ``benches/transfer_auto.py --source-rows 0``
(read from its cache, or trained here with the same recipe).

Target: matbench expt_gap, KFold(5, shuffle, 18012019). Per outer fold, on magpie_full descriptors:
- ``gbm``: gradient boosting, settings by inner 3-fold CV on the training rows (``TreeBaseline``);
- ``delta``: ``Delta`` (MLP head) on the PBE source network;
- ``multitask_1``: ``MultiTask`` with the PBE task only (labels [n, 1]);
- ``multitask_3``: ``MultiTask`` with PBE, OptB88vdW and TBmBJ (labels [n, 3], NaN = not computed);
- ``latent_3``: ``LatentVariable`` with the same three tasks.
Every strategy keeps its defaults (20,000 seeded source rows per joint fit, the joint and target
training settings of ``default_joint_config`` / ``default_target_config``); nothing is tuned here.
Results: benches/out/multifidelity_gap/<run>.json and a table on stdout.
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
OUT = HERE / "out" / "multifidelity_gap"
SOURCE_CACHE = HERE / "out" / "transfer_auto" / "clean_gap_source_srcall"
STRATEGIES = ("gbm", "delta", "multitask_1", "multitask_3", "latent_3")
FIDELITIES = ("pbe", "optb88vdw", "tbmbj")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _read(rel):
    import pandas as pd

    return pd.read_csv(DATA / rel, keep_default_na=False, na_values=[""], dtype={"formula": str})


def source_table(target_formulas):
    """(formulas, Y [n, 3], removed): one row per reduced composition over MP and JARVIS, NaN where a
    set has no gap for it; compositions of the target are dropped."""
    import pandas as pd

    from matxfer.transfer import composition_keys

    mp = _read("composition/dft/mp_gap_matbench.csv")
    jv = _read("composition/dft/jarvis_dft_3d_composition.csv")
    parts = [
        pd.DataFrame({"formula": mp.formula, "fidelity": "pbe", "gap": mp.band_gap_pbe_eV}),
        pd.DataFrame({"formula": jv.formula, "fidelity": "optb88vdw", "gap": jv.band_gap_optb88vdw_eV}),
        pd.DataFrame({"formula": jv.formula, "fidelity": "tbmbj", "gap": jv.band_gap_tbmbj_eV}),
    ]
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[np.isfinite(rows.gap.to_numpy(float))].reset_index(drop=True)
    keys = composition_keys(rows.formula.tolist())  # bytes per reduced composition (compared in Python:
    target = set(composition_keys(target_formulas).tolist())  # pandas' isin does not match these bytes keys)
    overlap = np.array([k in target for k in keys], dtype=bool)
    removed = {f: int(((rows.fidelity == f).to_numpy() & overlap).sum()) for f in FIDELITIES}
    ids: dict = {}
    rows["key"] = [ids.setdefault(k, len(ids)) for k in keys]
    rows = rows[~overlap]
    wide = rows.pivot_table(index="key", columns="fidelity", values="gap", aggfunc="mean")[list(FIDELITIES)]
    first = rows.drop_duplicates("key").set_index("key").formula
    return first.loc[wide.index].tolist(), wide.to_numpy(float), removed


def source_network(quick: bool):
    """The clean all-rows MP-gap MLP of benches/transfer_auto.py (its cache, else trained the same way)."""
    from matxfer.nn import load_model

    if not quick and (SOURCE_CACHE / "removed.json").exists():
        return load_model(SOURCE_CACHE).eval(), "cache " + str(SOURCE_CACHE.relative_to(HERE.parent))
    import transfer_auto  # benches/ is on sys.path when this file runs as a script

    expt = _read("composition/experimental/expt_gap_matbench.csv")
    sources, _ = transfer_auto.clean_gap_sources(expt.formula.tolist(), quick, source_rows=0)
    model = next(v[0] for v in sources.values() if isinstance(v, tuple))
    return model.eval(), "trained by transfer_auto.clean_gap_sources(source_rows=0)"


def make(name: str, seed: int, quick: bool):
    from matxfer.transfer import Delta, LatentVariable, MultiTask, TreeBaseline, default_joint_config

    joint = {"joint_config": default_joint_config(epochs=4)} if quick else {}
    if name == "gbm":
        return TreeBaseline("gbm", seed=seed, output_floor=0.0)
    if name == "delta":
        return Delta(seed=seed, output_floor=0.0)
    if name.startswith("multitask"):
        return MultiTask(seed=seed, output_floor=0.0, **joint)
    return LatentVariable(seed=seed, output_floor=0.0, **joint)


def run(folds, seeds, quick: bool) -> dict:
    import torch

    import matxfer
    from matxfer.transfer import matbench_kfold

    torch.set_num_threads(1)
    expt = _read("composition/experimental/expt_gap_matbench.csv")
    formulas, y = expt.formula.tolist(), expt.band_gap_expt_eV.to_numpy(float)
    src_formulas, Y, removed = source_table(formulas)
    if quick:
        keep = np.sort(np.random.default_rng(0).choice(len(Y), 5000, replace=False))
        src_formulas, Y = [src_formulas[i] for i in keep], Y[keep]
    X = np.asarray(matxfer.featurize(formulas, preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
    Xs = np.asarray(matxfer.featurize(src_formulas, preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
    source, source_note = source_network(quick)
    result = {"n_target": len(y), "n_source_compositions": len(Y), "labels_per_fidelity":
              {f: int(np.isfinite(Y[:, j]).sum()) for j, f in enumerate(FIDELITIES)}, "removed_overlap_rows": removed,
              "source_network": source_note, "quick": quick, "uptime_start": uptime(), "runs": []}
    print(f"source compositions {len(Y)}; labels {result['labels_per_fidelity']}; removed (overlap) {removed}", flush=True)
    splits = list(matbench_kfold().split(np.zeros(len(y))))
    for k in folds:
        train, test = splits[k]
        for seed in seeds:
            for name in STRATEGIES:
                t0 = time.perf_counter()
                s = make(name, seed, quick)
                if name == "delta":
                    s.use_source(source)
                elif name == "multitask_1":  # the PBE task only: the compositions that have a PBE gap
                    pbe = np.isfinite(Y[:, 0])
                    s.use_source(source, Xs[pbe], Y[pbe, 0])
                elif name in ("multitask_3", "latent_3"):
                    s.use_source(source, Xs, Y)
                s.adapt(X[train], y[train])
                pred = s.predict(X[test])
                mae = float(np.mean(np.abs(pred - y[test])))
                result["runs"].append({"fold": k, "seed": seed, "strategy": name, "mae": mae,
                                       "seconds": time.perf_counter() - t0})
                print(f"fold {k} seed {seed} {name}: MAE {mae:.4f} eV ({time.perf_counter() - t0:.0f} s)", flush=True)
                result["uptime_end"] = uptime()
                OUT.mkdir(parents=True, exist_ok=True)
                tag = ("quick_" if quick else "") + "folds" + "".join(map(str, folds)) + "_seeds" + "".join(map(str, seeds))
                (OUT / f"{tag}.json").write_text(json.dumps(result, indent=1))
    return result


def table(result: dict) -> str:
    runs = result["runs"]
    gbm = {(r["fold"], r["seed"]): r["mae"] for r in runs if r["strategy"] == "gbm"}
    lines = ["| strategy | MAE (eV), mean ± sd over folds x seeds | vs gbm (same folds) | folds x seeds |", "|---|---|---|---|"]
    for name in STRATEGIES:
        maes = [r["mae"] for r in runs if r["strategy"] == name]
        if not maes:
            continue
        ratio = np.mean(maes) / np.mean([gbm[(r["fold"], r["seed"])] for r in runs if r["strategy"] == name])
        lines.append(f"| {name} | {np.mean(maes):.4f} ± {np.std(maes):.4f} | {100 * (ratio - 1):+.1f} % | {len(maes)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--merge", action="store_true", help="print one table from every saved run (no training)")
    args = parser.parse_args(argv)
    if args.merge:
        parts = [json.loads(p.read_text()) for p in sorted(OUT.glob("folds*.json"))]
        if not parts:
            parser.error(f"no saved runs in {OUT}")
        merged = dict(parts[0], runs=[r for p in parts for r in p["runs"]])
        print(table(merged))
        for p in parts:
            print(f"run: start {p['uptime_start']}; end {p['uptime_end']}")
        return
    folds = [int(f) for f in args.folds.split(",")]
    if any(f not in range(5) for f in folds):
        parser.error("--folds takes outer folds 0-4")
    result = run(folds, args.seeds, args.quick)
    print(table(result))
    print(f"start: {result['uptime_start']}\nend:   {result['uptime_end']}")


if __name__ == "__main__":
    main()
