"""Periodic Voronoi tessellation: matxfer against pymatgen's VoronoiNN (scipy/qhull), in one run.

    python benches/voronoi.py                 # whole shared datasets for matxfer, pymatgen on subsets
    python benches/voronoi.py --pymatgen-seconds 10 --quick

matxfer tessellates each whole dataset in one call (``n_threads=1`` and all cores). pymatgen
(``VoronoiNN(tol=0, cutoff=13)``, the settings matminer uses) takes about 0.1 s per site, so it is
timed on the first structures of each dataset until ``--pymatgen-seconds`` have passed (structures
pymatgen fails on are counted and left out of its time), both ways
it can be called: ``get_voronoi_polyhedra`` site by site (what matminer's site featurizers call)
and ``get_all_voronoi_polyhedra`` (one tessellation per structure, faster for large cells). The
ratio is per site against the faster of the two, with matxfer timed on the same subset in one
call and on the whole dataset. Times are the best of ``--repeat`` runs for matxfer.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from matxfer.structures import read_structures, voronoi_cells

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
SETS = [
    "perov5_valtest_cdvae.jsonl",
    "mp_piezoelectric_matminer.jsonl",
    "mp_phonon_dielectric_matminer.jsonl",
    "mp_bulk_moduli100_megnet.jsonl",
    "carbon24_valtest_cdvae.jsonl",
    "jarvis_dft_2d_matminer.jsonl",
]


def best(batch, repeat, **kwargs):
    """Best time of `repeat` calls of voronoi_cells(batch, **kwargs), and the last result."""
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = voronoi_cells(batch, **kwargs)
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def pymatgen_subset(structs, seconds, per_site):
    """Sites done and seconds spent by pymatgen on the first structures, until `seconds`."""
    from pymatgen.analysis.local_env import VoronoiNN

    nn = VoronoiNN(tol=0, cutoff=13)
    n_structures, n_sites, spent, failed = 0, 0, 0.0, 0
    for s in structs:
        t = time.perf_counter()
        try:
            if per_site:
                for k in range(len(s)):
                    nn.get_voronoi_polyhedra(s, k)
            else:
                nn.get_all_voronoi_polyhedra(s)
        except (ValueError, RuntimeError):
            # pymatgen gives up on some structures ("No Voronoi neighbors found for site"):
            # counted, and left out of its time.
            failed += 1
            continue
        finally:
            n_structures += 1
        spent += time.perf_counter() - t
        n_sites += len(s)
        if spent >= seconds:
            break
    return n_structures, n_sites, spent, failed


def failed(n):
    return f", {n} failed" if n else ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="first 3 datasets only")
    parser.add_argument("--only", default=None, help="comma-separated dataset file names")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pymatgen-seconds", type=float, default=20.0, help="time budget per dataset and call style")
    args = parser.parse_args()
    import pymatgen.core

    n_cpu = os.cpu_count()
    print(f"# {platform.processor() or platform.machine()}, {n_cpu} cores, python {platform.python_version()}, pymatgen {pymatgen.core.__version__}")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other users share this machine)")
    print(
        "| dataset | structures | sites | matxfer 1 thread (s) | matxfer all (s) | pymatgen subset (structures / sites) "
        "| pymatgen per site, by site (ms) | pymatgen per site, all at once (ms) | matxfer per site, same subset, 1 thread (ms) "
        "| ratio same subset | ratio whole set 1 thread | ratio whole set all threads |"
    )
    print("|" + "---|" * 12)
    names = args.only.split(",") if args.only else SETS[:3] if args.quick else SETS
    for name in names:
        batch = read_structures(DATA / "structures" / name)
        n_sites = len(batch.numbers)
        t1, cells = best(batch, args.repeat, n_threads=1)
        tn, _ = best(batch, args.repeat)
        sums = np.add.reduceat(cells.volumes, batch.ptr[:-1])
        assert np.allclose(sums, np.abs(np.linalg.det(batch.lattices)), rtol=1e-9, atol=0)
        structs = [batch.to_pymatgen(k) for k in range(min(len(batch), 400))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ns_a, sites_a, sec_a, fail_a = pymatgen_subset(structs, args.pymatgen_seconds, per_site=True)
            ns_b, sites_b, sec_b, fail_b = pymatgen_subset(structs, args.pymatgen_seconds, per_site=False)
        per_a, per_b = sec_a / sites_a, sec_b / sites_b
        pmg = min(per_a, per_b)
        n_sub = max(ns_a, ns_b)
        sub = batch.select(range(n_sub))
        t_sub, _ = best(sub, args.repeat, n_threads=1)
        per_sub = t_sub / len(sub.numbers)
        print(
            f"| {name} | {len(batch)} | {n_sites} | {t1:.3f} | {tn:.3f} | {ns_a} / {sites_a} (by site{failed(fail_a)}), {ns_b} / {sites_b} (all{failed(fail_b)}) "
            f"| {per_a * 1e3:.1f} | {per_b * 1e3:.1f} | {per_sub * 1e3:.4f} | {pmg / per_sub:,.0f}x "
            f"| {pmg / (t1 / n_sites):,.0f}x | {pmg / (tn / n_sites):,.0f}x |",
            flush=True,
        )
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
