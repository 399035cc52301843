"""CGCNN on the core's Gaussian expansion vs the network's own torch expansion: same predictions, time.

    python benches/graph_rbf.py                      # perov_5 (7,572 graphs) and JARVIS 2D (636)
    python benches/graph_rbf.py --epochs 2 --datasets perov_5

For each dataset the graphs are built once without and once with ``rbf=model.graph_rbf()`` (CGCNN-style
graphs: 8 angstrom, 12 nearest neighbours, 40 Gaussians; the build times are printed). Then the same
network (same seed) trains ``--epochs`` timed epochs (after one untimed warm-up epoch) and predicts the
whole set on each input, on the CPU with ``--threads`` torch threads; the table gives seconds per
epoch / per prediction pass, the ratio (torch expansion / core RBF: > 1 means the core's RBF is
faster) and the largest prediction difference of the untrained network between the two inputs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import matxfer
from matxfer.graphs import build_graphs
from matxfer.nn import CGCNN, GraphData, TrainConfig, Trainer, predict
from matxfer.structures import read_structures

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
DATASETS = {"perov_5": "perov5_valtest_cdvae.jsonl", "jarvis_2d": "jarvis_dft_2d_matminer.jsonl"}


def timed(fn, repeat=1):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-graphs", type=int, default=None, help="use the first N structures of each set")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.datasets:
        batch = read_structures(DATA / "structures" / DATASETS[name])
        if args.max_graphs is not None:
            batch = batch.select(range(min(args.max_graphs, len(batch))))
        torch.manual_seed(0)
        model = CGCNN(node_dim=48, n_conv=3, hidden=(64,))
        g0, t_plain = timed(partial(build_graphs, batch, 8.0, max_neighbors=12), 3)
        g1, t_rbf = timed(partial(build_graphs, batch, 8.0, max_neighbors=12, rbf=model.graph_rbf(), rbf_dtype="float32"), 3)
        y = np.zeros(len(batch))
        plain = GraphData(g0.numbers, g0.edge_index, g0.distances, g0.graph_ptr, y=y)
        core = GraphData.from_graphs(g1, y=y)
        diff = float(np.abs(predict(model, plain) - predict(model, core)).max())
        result = {"dataset": name, "graphs": len(batch), "edges": g0.n_edges, "build_plain": t_plain, "build_rbf": t_rbf,
                  "diff": diff}
        for label, data in (("torch", plain), ("core", core)):
            config = TrainConfig(epochs=1, batch_size=args.batch_size, patience=None, val_fraction=0.0, device="cpu",
                                 schedule="constant", seed=0)
            net = CGCNN(node_dim=48, n_conv=3, hidden=(64,))
            net.load_state_dict(model.state_dict())
            Trainer(config).fit(net, data)  # warm-up
            _, t_train = timed(partial(Trainer(config.replace(epochs=args.epochs)).fit, net, data))
            _, t_pred = timed(partial(predict, net, data, batch_size=1024), 3)
            result[f"epoch_{label}"] = t_train / args.epochs
            result[f"pred_{label}"] = t_pred
        rows.append(result)
        print(result, flush=True)
    print(f"\nmatxfer {matxfer.__version__}, torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {args.threads}, load {os.getloadavg()[0]:.2f}\n")
    print("| dataset | graphs | edges | build s (no RBF / core RBF) | train s/epoch (torch exp. / core RBF) | ratio | "
          "predict s (torch exp. / core RBF) | ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['graphs']} | {r['edges']} | {r['build_plain']:.3f} / {r['build_rbf']:.3f} | "
              f"{r['epoch_torch']:.2f} / {r['epoch_core']:.2f} | {r['epoch_torch'] / r['epoch_core']:.2f} | "
              f"{r['pred_torch']:.3f} / {r['pred_core']:.3f} | {r['pred_torch'] / r['pred_core']:.2f} | {r['diff']:.1e} |")


if __name__ == "__main__":
    main()
