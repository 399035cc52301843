"""CrystalNN and BondFractions: matxfer against pymatgen's CrystalNN and matminer's BondFractions,
in one run.

    python benches/crystalnn.py                        # whole shared datasets for matxfer
    python benches/crystalnn.py --reference-seconds 10 --only perov5_valtest_cdvae.jsonl

matxfer computes CrystalNN for every site of each whole dataset in one call (``n_threads=1`` and
all cores). pymatgen (``CrystalNN().get_nn_data``, what ``get_nn_info``, ``get_cn`` and matminer's
site featurizers call per site) takes about 0.05-0.3 s per site, so it runs on the first
structures of each dataset until ``--reference-seconds`` have passed; matxfer is timed on that same
subset too, and its results there are checked against pymatgen's (same chosen CN and neighbor set
for every site; the count of differing sites is printed). matminer's ``BondFractions()`` (CrystalNN
neighbors) and ``SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")`` are timed the same
way against ``matxfer.local_env.BondFractions`` and ``site_stats_crystal_nn_ops`` (whole set). Ratios are per site
(per structure for BondFractions). matxfer times are the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

from matxfer.local_env import BondFractions, crystal_nn, site_stats_crystal_nn_ops
from matxfer.structures import read_structures

DATA = Path(
    os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()
SETS = [
    "perov5_valtest_cdvae.jsonl",
    "mp_piezoelectric_matminer.jsonl",
    "mp_phonon_dielectric_matminer.jsonl",
    "carbon24_valtest_cdvae.jsonl",
    "mlearn_elemental_alignn.jsonl.gz",
]


def best(f, repeat):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def pymatgen_subset(structs, seconds):
    """(structures, sites, seconds, per-structure results) of pymatgen on the first structures."""
    from pymatgen.analysis.local_env import CrystalNN

    nn = CrystalNN()
    spent, n_sites, results = 0.0, 0, []
    for s in structs:
        t = time.perf_counter()
        out = []
        for k in range(len(s)):
            d = nn.get_nn_data(s, k)
            cn = max(d.cn_weights, key=lambda c: d.cn_weights[c])
            out.append(
                (cn, {(int(e["site_index"]), tuple(int(x) for x in e["image"])) for e in d.cn_nninfo[cn]})
            )
        spent += time.perf_counter() - t
        n_sites += len(s)
        results.append(out)
        if spent >= seconds:
            break
    return len(results), n_sites, spent, results


def matminer_subset(structs, seconds):
    from matminer.featurizers.structure.bonding import BondFractions as MatminerBondFractions

    f = MatminerBondFractions().fit(structs)
    spent, n = 0.0, 0
    for s in structs:
        t = time.perf_counter()
        f.featurize(s)
        spent += time.perf_counter() - t
        n += 1
        if spent >= seconds:
            break
    return n, spent


def matminer_ops_subset(structs, seconds):
    from matminer.featurizers.structure.sites import SiteStatsFingerprint

    f = SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    spent, n, sites = 0.0, 0, 0
    for s in structs:
        t = time.perf_counter()
        f.featurize(s)
        spent += time.perf_counter() - t
        n += 1
        sites += len(s)
        if spent >= seconds:
            break
    return n, sites, spent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None, help="comma-separated dataset file names")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--reference-seconds",
        type=float,
        default=20.0,
        help="time budget per dataset for pymatgen (and for matminer)",
    )
    parser.add_argument("--no-matminer", action="store_true")
    args = parser.parse_args()
    import pymatgen.core

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, pymatgen {pymatgen.core.__version__}"
    )
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other users share this machine)")
    print(
        "| dataset | structures | sites | matxfer 1 thread (s) | matxfer all (s) | pymatgen subset (structures / sites) "
        "| pymatgen per site (ms) | matxfer per site, same subset, 1 thread (ms) | sites differing | ratio same subset "
        "| ratio whole set 1 thread | ratio whole set all threads |"
    )
    print("|" + "---|" * 12)
    bond_rows = []
    ops_rows = []
    names = args.only.split(",") if args.only else SETS
    for name in names:
        batch = read_structures(DATA / "structures" / name)
        n_sites = len(batch.numbers)
        t1, _ = best(lambda b=batch: crystal_nn(b, n_threads=1), args.repeat)
        tn, _ = best(lambda b=batch: crystal_nn(b), args.repeat)
        structs = [batch.to_pymatgen(k) for k in range(min(len(batch), 400))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ns, sites, sec, ref = pymatgen_subset(structs, args.reference_seconds)
        sub = batch.select(range(ns))
        t_sub, mine = best(lambda b=sub: crystal_nn(b, n_threads=1), args.repeat)
        differ = 0
        for s in range(ns):
            for k, (cn, nbrs) in enumerate(ref[s]):
                t = int(sub.ptr[s]) + k
                j, shifts, _ = mine.neighbors(t)
                got = {(int(a), tuple(int(x) for x in b)) for a, b in zip(j, shifts)}
                differ += int(int(mine.cn[t]) != cn or got != nbrs)
        per_pmg, per_sub = sec / sites, t_sub / len(sub.numbers)
        print(
            f"| {name} | {len(batch)} | {n_sites} | {t1:.3f} | {tn:.3f} | {ns} / {sites} | {1e3 * per_pmg:.1f} | {1e3 * per_sub:.4f} "
            f"| {differ} | {per_pmg / per_sub:.0f}x | {per_pmg / (t1 / n_sites):.0f}x | {per_pmg / (tn / n_sites):.0f}x |",
            flush=True,
        )
        if not args.no_matminer:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nm, sec_m = matminer_subset(structs, args.reference_seconds)
            mine_bf = BondFractions().fit(batch)
            tb1, _ = best(lambda f=mine_bf, b=batch: f.featurize(b), args.repeat)
            bond_rows.append((name, len(batch), nm, sec_m / nm, tb1 / len(batch)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                no, so, sec_o = matminer_ops_subset(structs, args.reference_seconds)
            to, _ = best(lambda b=batch: site_stats_crystal_nn_ops(b), 1)
            ops_rows.append((name, len(batch), n_sites, no, so, sec_o / so, to / n_sites))
    if bond_rows:
        print()
        print(
            "| dataset | structures | matminer subset (structures) | matminer per structure (ms) | matxfer per structure, whole set, all threads (ms) | ratio |"
        )
        print("|" + "---|" * 6)
        for name, n, nm, per_m, per_x in bond_rows:
            print(f"| {name} | {n} | {nm} | {1e3 * per_m:.1f} | {1e3 * per_x:.4f} | {per_m / per_x:.0f}x |")
    if ops_rows:
        print()
        print(
            '| dataset | structures | sites | matminer SiteStatsFingerprint("CrystalNNFingerprint_ops") subset (structures / sites) '
            "| matminer per site (ms) | matxfer per site, whole set, all threads (ms) | ratio |"
        )
        print("|" + "---|" * 7)
        for name, n, ns, no, so, per_m, per_x in ops_rows:
            print(
                f"| {name} | {n} | {ns} | {no} / {so} | {1e3 * per_m:.1f} | {1e3 * per_x:.4f} | {per_m / per_x:.0f}x |"
            )


if __name__ == "__main__":
    main()
