"""Structure -> structure transfer: a crystal-graph source trained on a large structure set, transferred to
small real structure targets, against a from-scratch CGCNN under the same budget and gradient boosting on
composition + structure descriptors (the no-transfer baseline a user would pick).

    python benches/graph_transfer.py                                   # every target, 3 seeds
    python benches/graph_transfer.py --targets jdft2d_eform --seeds 0 --epochs 30   # a quick look

Sources: the shipped library model ``perov5/heat_of_formation/crystal_graph/cgcnn`` (CGCNN trained on
6,830 DFT-relaxed perov_5 cubic perovskites, heat of formation), or for ``bulk_moduli`` a CGCNN of the
same architecture trained here on all 1,296 MP phonon structures (highest phonon-DOS peak; a stiffness-
related property). Targets (``--n-train`` labelled rows, at most 70 % of the set, a seeded random
sample; the test rows are the others, at most ``--max-test``):

* ``jdft2d_eform``: JARVIS-DFT 2D materials (636), formation energy (eV/atom): another family of
  structures (monolayers with vacuum), a related property;
* ``phonons``: MP DFPT phonons (1,296), highest phonon-DOS peak (cm^-1): another family, another property;
* ``perov5_heat_all``: the 742 perov_5 structures the source never saw (its composition hold-out),
  CMR ``heat_all`` (heat of formation against another set of references; r = 0.97 with the source's
  ``heat_ref``): the same family, a closely related property;
* ``bulk_moduli``: the 100 MP structures of MEGNet's example, log10 bulk modulus (GPa).

Strategies (every network sees the same target rows, the same ``default_target_config`` budget with
``--epochs`` epochs): ``scratch_cgcnn`` (the source architecture, freshly initialised, full learning
rate), ``finetune`` (whole network, a third of the learning rate, output scaling refit to the target),
``frozen_ridge`` / ``frozen_gbm`` (pooled crystal embedding and readout states of the frozen source ->
ridge / gradient boosting), ``multitask`` (source and target heads trained jointly on 2,000 source
structures + the target rows), and the baselines ``gbm_comp`` (HistGradientBoosting on magpie
composition descriptors, settings by inner 3-fold CV) and ``gbm_comp_struct`` (the same on magpie +
density / volume per atom / packing fraction + sine-Coulomb eigenvalue statistics). Reported: test MAE,
mean +- std over seeds, and each strategy's ratio to the scratch CGCNN and to the best GBM baseline
(< 1: better).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import matxfer
import matxfer.library as lib
from matxfer.library.structure import holdout_split
from matxfer.nn import GraphRegressor
from matxfer.nn.graph_models import as_graph_model
from matxfer.structures import density_features, read_structures, sine_coulomb_eigenvalues
from matxfer.transfer import FineTune, FrozenFeatures, MultiTask, TreeBaseline, default_target_config
from matxfer.transfer.joint import default_joint_config

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
SOURCE = "perov5/heat_of_formation/crystal_graph/cgcnn"
TARGETS = {
    "jdft2d_eform": ("jarvis_dft_2d_matminer.jsonl", "formation_energy_eV_per_atom", "eV/atom"),
    "phonons": ("mp_phonon_dielectric_matminer.jsonl", "last_phdos_peak_cm1", "cm^-1"),
    "perov5_heat_all": ("perov5_valtest_cdvae.jsonl", "heat_all", "eV/cell"),
    "bulk_moduli": ("mp_bulk_moduli100_megnet.jsonl", "bulk_modulus_GPa", "log10 GPa"),
}
#: targets whose source is not the library model: a CGCNN trained here on (file, column) of another set
OWN_SOURCE = {"bulk_moduli": ("mp_phonon_dielectric_matminer.jsonl", "last_phdos_peak_cm1")}


def load_target(name):
    """(StructureBatch, y, formulas) of a target; perov5_gap keeps only the source's hold-out rows."""
    file, column, _ = TARGETS[name]
    path = DATA / "structures" / file
    batch = read_structures(path)
    with open(path) as fh:
        records = [json.loads(line) for line in fh]
    y = np.array([np.nan if r.get(column) is None else float(r[column]) for r in records])
    rows = np.flatnonzero(np.isfinite(y))
    if name.startswith("perov5"):
        _, test = holdout_split(batch)  # the rows the library source was not trained on
        rows = np.intersect1d(rows, test)
    if name == "bulk_moduli":
        y = np.log10(y)
    formulas = ["".join(f"{el}{c}" for el, c in sorted(Counter(records[i]["species"]).items())) for i in rows]
    return batch.select(rows), y[rows], formulas


def descriptors(batch, formulas):
    comp = np.asarray(matxfer.featurize(formulas, preset="magpie").values, dtype=np.float64)
    dens = density_features(batch)
    eig = sine_coulomb_eigenvalues(batch)
    eig_stats = np.column_stack([eig.max(1), eig.mean(1), eig.min(1), (eig > 0).sum(1)])
    return comp, np.concatenate([comp, dens, eig_stats], axis=1)


def source_rows(n, seed, own=None):
    """Structures and labels of the source: a seeded sample of the library source's training rows, or
    all rows of an own source set ``(file, column)``."""
    file, column = own or ("perov5_valtest_cdvae.jsonl", "heat_ref")
    path = DATA / "structures" / file
    batch = read_structures(path)
    with open(path) as fh:
        y = np.array([json.loads(line)[column] for line in fh])
    train = holdout_split(batch)[0] if own is None else np.arange(len(y))
    pick = np.sort(np.random.default_rng(seed).choice(train, size=min(n, len(train)), replace=False))
    return batch.select(pick), y[pick]


def own_source(target, args):
    """A CGCNN trained on the whole own-source set (default_source_config budget, ``--source-epochs``),
    with the library model's architecture; cached under --cache."""
    from matxfer.nn import load_model, save_model
    from matxfer.transfer import pretrain_graph
    from matxfer.transfer.base import default_source_config

    cache = Path(args.cache) / f"source_{target}_{args.source_epochs}"
    if (cache / "model.json").exists():
        return load_model(cache), None
    batch, y = source_rows(10**9, 0, OWN_SOURCE[target])
    t0 = time.perf_counter()
    model = pretrain_graph(batch, y, graph={"node_dim": 48, "n_conv": 3, "hidden": (64,)},
                           config=default_source_config(epochs=args.source_epochs, batch_size=32, device="cpu"))
    seconds = time.perf_counter() - t0
    save_model(model, cache)
    return model, seconds


def run(args):
    library = lib.load(SOURCE)
    config = default_target_config(epochs=args.epochs, batch_size=args.batch_size, device="cpu")
    library_rows = source_rows(args.source_rows, 0)
    results = {}
    for target in args.targets:
        if target in OWN_SOURCE:
            source, seconds = own_source(target, args)
            src_batch, src_y = source_rows(args.source_rows, 0, OWN_SOURCE[target])
            print(f"{target}: source CGCNN on {OWN_SOURCE[target]}" + (f" trained in {seconds:.0f} s" if seconds else " (cached)"))
        else:
            source, (src_batch, src_y) = library, library_rows
        batch, y, formulas = load_target(target)
        n_train = min(args.n_train, int(0.7 * len(y)))
        comp, comp_struct = descriptors(batch, formulas)
        for seed in args.seeds:
            rng = np.random.default_rng(1000 + seed)
            perm = rng.permutation(len(y))
            tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + args.max_test])
            btr, bte = batch.select(tr), batch.select(te)
            row = {}
            fits = strategy_fits(source, config, args, seed, btr, bte, y[tr], comp[tr], comp[te], comp_struct[tr],
                                 comp_struct[te], src_batch, src_y)
            for name in args.strategies or fits:
                t0 = time.perf_counter()
                pred = fits[name]()
                row[name] = (float(np.mean(np.abs(pred - y[te]))), time.perf_counter() - t0)
                print(f"{target:13s} seed {seed} {name:16s} MAE {row[name][0]:.4g}  ({row[name][1]:.1f} s)", flush=True)
            results.setdefault(target, []).append(row)
    return results


def strategy_fits(source, config, args, seed, btr, bte, ytr, comp_tr, comp_te, cs_tr, cs_te, src_batch, src_y):
    """{name: function fitting the strategy on the training rows and predicting the test rows}."""

    def graph_scratch():
        torch.manual_seed(seed)
        graph = as_graph_model(source)
        net = GraphRegressor(graph.init_args["graph"], graph_options=graph.graph_options)
        s = FineTune(lr=config.lr, refit_output_scaling=True, target_config=config, seed=seed)
        return s.use_source(net).adapt(btr, ytr).predict(bte)

    joint = default_joint_config(epochs=args.epochs, batch_size=args.batch_size, device="cpu")
    return {
        "scratch_cgcnn": graph_scratch,
        "finetune": lambda: FineTune(refit_output_scaling=True, target_config=config, seed=seed)
        .use_source(source).adapt(btr, ytr).predict(bte),
        "frozen_ridge": lambda: FrozenFeatures(head="ridge", seed=seed).use_source(source).adapt(btr, ytr).predict(bte),
        "frozen_gbm": lambda: FrozenFeatures(head="gbm", seed=seed).use_source(source).adapt(btr, ytr).predict(bte),
        "multitask": lambda: MultiTask(max_source_rows=None, joint_config=joint, seed=seed)
        .use_source(source, src_batch, src_y).adapt(btr, ytr).predict(bte),
        "gbm_comp": lambda: TreeBaseline("gbm", seed=seed).adapt(comp_tr, ytr).predict(comp_te),
        "gbm_comp_struct": lambda: TreeBaseline("gbm", seed=seed).adapt(cs_tr, ytr).predict(cs_te),
    }


def table(results, args):
    lines = [f"| target | strategy | test MAE (mean +- std, {len(args.seeds)} seeds) | / scratch CGCNN | / best GBM | s per fit |",
             "|---|---|---|---|---|---|"]
    for target, rows in results.items():
        names = list(rows[0])
        mae = {n: np.array([r[n][0] for r in rows]) for n in names}
        secs = {n: np.mean([r[n][1] for r in rows]) for n in names}
        gbm = [n for n in names if n.startswith("gbm")]
        best_gbm = min((mae[n].mean() for n in gbm), default=np.nan)
        scratch = mae["scratch_cgcnn"].mean() if "scratch_cgcnn" in mae else np.nan
        units = TARGETS[target][2]
        for n in names:
            m = mae[n]
            lines.append(f"| {target} ({units}) | {n} | {m.mean():.4g} +- {m.std():.2g} | {m.mean() / scratch:.2f} | "
                         f"{m.mean() / best_gbm:.2f} | {secs[n]:.1f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--strategies", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--source-rows", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--source-epochs", type=int, default=60)
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "matxfer_graph_transfer"),
                   help="where the own source networks are cached between runs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = run(args)
    print(f"\nmatxfer {matxfer.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads {args.threads}, {time.perf_counter() - t0:.0f} s in all; "
          f"load {os.getloadavg()[0]:.2f}; n_train {args.n_train}, epochs {args.epochs}\n")
    print(table(results, args))


if __name__ == "__main__":
    main()
