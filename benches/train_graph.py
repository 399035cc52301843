"""Training throughput of the crystal-graph network (CGCNN over matxfer's batched graphs): epoch time
on the CPU and, when one is present, on a CUDA GPU (bf16 autocast, batches cut on the device), with the
GPU's utilisation sampled while the epochs run.

    python benches/train_graph.py                      # perov_5 and carbon_24, 4 timed epochs each
    python benches/train_graph.py --epochs 2 --datasets perov_5

Each row: the graphs of a whole shared dataset are built once (exact periodic radius graph, the
time is printed), then one untimed warm-up epoch and ``--epochs`` timed epochs of the same model and
settings run on each device. "graphs/s" counts training graphs per second of an epoch (forward,
backward and AdamW step); "x CPU" divides the CPU epoch time by the device's. GPU utilisation is the
mean of ``nvidia-smi`` samples every 50 ms during the timed epochs (blank without nvidia-smi).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch

from matxfer.nn import CGCNN, GraphData, TrainConfig, Trainer
from matxfer.structures import read_structures

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
DATASETS = {
    "perov_5": ("perov5_valtest_cdvae.jsonl", "heat_all"),
    "carbon_24": ("carbon24_valtest_cdvae.jsonl", "energy_per_atom_eV"),
}


class UtilisationSampler:
    """Samples GPU utilisation (%) with nvidia-smi in a background thread."""

    def __init__(self, period=0.05):
        self.period, self.samples, self._stop = period, [], threading.Event()
        self.exe = shutil.which("nvidia-smi")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run([self.exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        if self.exe:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.exe:
            self._thread.join()

    def mean(self):
        return float(np.mean(self.samples)) if self.samples else float("nan")


def read_targets(path, key):
    with open(path) as fh:
        return np.array([json.loads(line)[key] for line in fh], dtype=np.float64)


def time_epochs(graphs, cutoff, device, epochs, batch_size, node_dim):
    torch.manual_seed(0)
    model = CGCNN(node_dim=node_dim, n_conv=3, cutoff=cutoff)
    common = dict(batch_size=batch_size, lr=1e-3, patience=None, val_fraction=0.0, device=device, bf16=True)
    Trainer(TrainConfig(epochs=1, **common)).fit(model, graphs)  # warm-up: allocator, kernels, caches
    if device == "cuda":
        torch.cuda.synchronize()
    trainer = Trainer(TrainConfig(epochs=epochs, **common))
    with UtilisationSampler() if device == "cuda" else contextlib.nullcontext() as sampler:
        t0 = time.perf_counter()
        trainer.fit(model, graphs)
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    per_epoch = min(r["seconds"] for r in trainer.history)
    return per_epoch, wall / epochs, sampler.mean() if device == "cuda" else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="perov_5,carbon_24")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cutoff", type=float, default=6.0)
    parser.add_argument("--node-dim", type=int, default=64)
    parser.add_argument("--devices", default="cpu,cuda", help="devices to time (cuda is skipped when absent)")
    args = parser.parse_args()
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} CPU "
          f"threads), GPU: {gpu}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"# CGCNN node_dim={args.node_dim}, 3 convolutions, radius graph {args.cutoff} A, batch {args.batch_size} "
          f"graphs, AdamW, bf16 autocast on CUDA; best epoch of {args.epochs} after one warm-up epoch")
    print("| dataset | structures | edges | graph build (s) | device | epoch (s) | mean epoch (s) | graphs/s | x CPU | GPU util (%) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        file, key = DATASETS[name]
        batch = read_structures(DATA / "structures" / file)
        y = read_targets(DATA / "structures" / file, key)
        t0 = time.perf_counter()
        graphs = GraphData.from_structures(batch, args.cutoff, y=y)
        build = time.perf_counter() - t0
        cpu_epoch = None
        for device in devices:
            best, mean, util = time_epochs(graphs, args.cutoff, device, args.epochs, args.batch_size, args.node_dim)
            cpu_epoch = best if device == "cpu" else cpu_epoch
            ratio = f"{cpu_epoch / best:.1f}x" if cpu_epoch else "-"
            util_s = "" if np.isnan(util) else f"{util:.0f}"
            print(f"| {name} | {len(batch):,} | {graphs.edge_index.shape[1]:,} | {build:.2f} | {device} | {best:.3f} | "
                  f"{mean:.3f} | {len(batch) / best:,.0f} | {ratio} | {util_s} |", flush=True)
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
