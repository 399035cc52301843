"""Local structure order parameters: matxfer against pymatgen's LocalStructOrderParams on the same
neighbor sets, in one run.

    python benches/order_params.py                      # whole datasets for matxfer, pymatgen on subsets
    python benches/order_params.py --pymatgen-sites 10 --datasets perov5_valtest_cdvae.jsonl

Neighbor sets: every site's Voronoi neighbors (matxfer's ``voronoi_cells``; 4 to about 20 per site),
the same (j, image) list for both tools. Order parameters: the 37 types of matminer's
``CrystalNNFingerprint.from_preset("ops")`` with matminer's parameters (``CRYSTALNN_OPS``), each
computed on every neighbor set. pymatgen is called as matminer calls it: one
``LocalStructOrderParams([type], parameters=[p])`` per type, ``get_order_parameters(sites, 0,
indices_neighs=...)`` on the center and its neighbor images; it is timed on the first
``--pymatgen-sites`` sites of each dataset (about a second per site), and its values there are
compared with matxfer's (largest absolute difference reported). matxfer computes each whole
dataset in one call (``n_threads=1`` and all cores); the ratio is per site. The Voronoi step is not
timed for either tool.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from matxfer.order_params import CRYSTALNN_OPS, order_parameters
from matxfer.structures import read_structures, voronoi_cells

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
SETS = ["perov5_valtest_cdvae.jsonl", "mp_piezoelectric_matminer.jsonl", "mp_phonon_dielectric_matminer.jsonl"]
TYPES = [(t, p) for _, _, t, p in CRYSTALNN_OPS]


def best(batch, cells, repeat, n_threads):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = order_parameters(batch, cells, TYPES, n_threads=n_threads)
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def pymatgen_sites(batch, cells, n_sites):
    """pymatgen's values and time on the first `n_sites` sites (structure order)."""
    from pymatgen.analysis.local_env import LocalStructOrderParams
    from pymatgen.core import PeriodicSite

    ops = [LocalStructOrderParams([t], parameters=[p]) for t, p in TYPES]
    values, spent, done = [], 0.0, 0
    for s in range(len(batch)):
        pmg = batch.to_pymatgen(s)
        part = cells.of(s)
        for n in range(len(pmg)):
            if done == n_sites:
                return np.array(values), spent, done
            rows = part.i == n
            sites = [pmg[n]] + [
                PeriodicSite(pmg[int(j)].species, pmg[int(j)].frac_coords + shift, pmg.lattice)
                for j, shift in zip(part.j[rows], part.shifts[rows])
            ]
            indices = list(range(1, len(sites)))
            t = time.perf_counter()
            row = [op.get_order_parameters(sites, 0, indices_neighs=indices)[0] for op in ops]
            spent += time.perf_counter() - t
            values.append([math.nan if v is None else float(v) for v in row])
            done += 1
    return np.array(values), spent, done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="*", default=SETS)
    parser.add_argument("--pymatgen-sites", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {len(TYPES)} order parameters per site")
    header = (
        "| dataset | sites | neighbors/site | matxfer 1 thread | matxfer all cores | pymatgen (sites) | "
        "pymatgen / site | ratio 1 thread | ratio all cores | max abs diff |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in args.datasets:
        batch = read_structures(DATA / "structures" / name)
        cells = voronoi_cells(batch)
        n_sites = int(batch.ptr[-1])
        t1, out = best(batch, cells, args.repeat, 1)
        tn, out_n = best(batch, cells, args.repeat, None)
        assert out.tobytes() == out_n.tobytes()
        theirs, spent, done = pymatgen_sites(batch, cells, args.pymatgen_sites)
        ours = out[:done]
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)), "None pattern differs"
        ok = ~np.isnan(theirs)
        diff = float(np.max(np.abs(ours[ok] - theirs[ok]))) if ok.any() else 0.0
        per_site = spent / done
        print(
            f"| {name} | {n_sites} | {len(cells) / n_sites:.1f} | {t1:.3f} s | {tn:.3f} s | {spent:.2f} s ({done}) | "
            f"{per_site * 1e3:.1f} ms | {per_site * n_sites / t1:,.0f}x | {per_site * n_sites / tn:,.0f}x | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
