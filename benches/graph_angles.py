"""CGCNN with and without bond angles (the core's triplets), on the library's structure sources.

    python benches/graph_angles.py                                  # carbon_24, perov_5 heat; seeds 0 1 2
    python benches/graph_angles.py --tasks carbon24/energy_per_atom --seeds 0 --angle-cutoff 4

Each task is trained exactly as ``matxfer library build`` trains it (the same CGCNN size, epochs,
learning rate, normalization, patience and hold-out: :data:`matxfer.library.structure.STRUCTURE_TASKS`
with :class:`~matxfer.library.structure.StructureBuildConfig`), once as the library's CGCNN and once
with ``angle_cutoff`` (an :class:`matxfer.nn.AngleUpdate` before each convolution, fed by the
core's ``triplet_index`` / ``triplet_cos``). The angle cutoff is M3GNet's published 4 angstrom, not
chosen on these targets. The table gives the hold-out MAE of each seed, the mean, the mean
predictor's MAE, the ratio (angles / plain: < 1 means the angles help) and the wall time per model,
on the CPU with the machine's threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import matxfer
from matxfer.library.structure import (
    STRUCTURE_TASKS,
    StructureBuildConfig,
    build_structure_model,
    structure_model_name,
)

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def main() -> None:
    tasks = {f"{t.dataset}/{t.property}": t for t in STRUCTURE_TASKS}
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["carbon24/energy_per_atom", "perov5/heat_of_formation"],
                    choices=sorted(tasks))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--angle-cutoff", type=float, default=4.0)
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()
    config = StructureBuildConfig()
    print(f"matxfer {matxfer.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; recipe {config.recipe()}")
    rows = []
    with tempfile.TemporaryDirectory() as lib:
        for key in args.tasks:
            task = tasks[key]
            for angles in (None, args.angle_cutoff):
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    out = build_structure_model(
                        DATA / task.file, task.column, name=structure_model_name(task, seed) + ("-angles" if angles else ""),
                        units=task.units, cutoff=config.cutoff, max_neighbors=config.max_neighbors,
                        node_dim=config.node_dim, n_conv=config.n_conv, n_gaussians=config.n_gaussians,
                        hidden=config.hidden, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        test_fraction=config.test_fraction, split_by=task.split_by, target_range=task.target_range,
                        norm=task.norm, patience=task.patience, angle_cutoff=angles, seed=seed, library=lib)
                    seconds = time.perf_counter() - t0
                    card = json.loads((Path(out) / "card.json").read_text())
                    m = card["metrics"]
                    rows.append(dict(task=key, angles=angles, seed=seed, mae=m["mae"], mean_mae=m["mean_predictor_mae"],
                                     epochs=card["training"]["epochs_run"], seconds=seconds))
                    print(f"  {key:28s} angles={angles!s:5s} seed {seed}: MAE {m['mae']:.4f} ({card['training']['epochs_run']} "
                          f"epochs, {seconds:.0f} s)", flush=True)
    print()
    print(f"{'task':28s} {'model':14s} {'MAE per seed':30s} {'mean':>8s} {'ratio':>6s} {'mean pred.':>10s} {'s/model':>8s}")
    for key in args.tasks:
        plain = [r for r in rows if r["task"] == key and r["angles"] is None]
        for label, sel in (("CGCNN", plain), (f"+angles {args.angle_cutoff:g} A",
                                               [r for r in rows if r["task"] == key and r["angles"] is not None])):
            mean = float(np.mean([r["mae"] for r in sel]))
            ratio = mean / float(np.mean([r["mae"] for r in plain]))
            per_seed = " ".join(f"{r['mae']:.4f}" for r in sel)
            print(f"{key:28s} {label:14s} {per_seed:30s} {mean:8.4f} {ratio:6.2f} {sel[0]['mean_mae']:10.4f} "
                  f"{np.mean([r['seconds'] for r in sel]):8.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
