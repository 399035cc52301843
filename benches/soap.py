"""SOAP power spectra: matxfer against dscribe's ``SOAP`` (GTO basis), parity and speed in one run.

    PYTHONPATH=python python benches/soap.py                 # defaults below
    PYTHONPATH=python python benches/soap.py --perov5 1000 --carbon24 500 --repeat 3

Two sets, both periodic, ``average="off"`` (one row per site) and ``"inner"`` (one row per
structure):

1. perov_5 validation/test set (``--perov5`` first structures, default 1,000 of 7,572; 5 sites each),
   species = its 56 elements, ``r_cut=5, n_max=3, l_max=4, sigma=0.5``: 70,980 features per row,
   almost all zero (a site sees at most 5 of the 56 elements). Run over chunks of ``--chunk``
   structures in both tools to bound memory.
2. carbon_24 (``--carbon24`` first structures, default 1,000; 6-24 sites), species = C,
   ``r_cut=5, n_max=8, l_max=6, sigma=0.5``: 252 dense features, ~215 neighbors per site, so the
   expansion dominates.

ASE ``Atoms`` for dscribe, one ``StructureBatch`` per chunk for matxfer (conversions outside the
timings). dscribe with ``n_jobs=1`` and ``2`` (its joblib split into processes), matxfer with
``n_threads=1`` and ``2``; wall time, best of ``--repeat``. Parity against dscribe ``n_jobs=1``:
max |matxfer - dscribe| / max |dscribe| per chunk, and the largest elementwise relative
difference among entries above 1e-6 of that maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MATXFER_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()


def read_atoms(name: str, limit: int | None) -> list:
    import ase

    out = []
    for line in (DATA / "structures" / f"{name}.jsonl").read_text().splitlines()[:limit]:
        d = json.loads(line)
        out.append(
            ase.Atoms(symbols=d["species"], scaled_positions=d["frac_coords"], cell=d["lattice"], pbc=True)
        )
    return out


def best(repeat: int, f) -> float:
    t_best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def dscribe_rows(desc, chunk, average: str, n_jobs: int) -> np.ndarray:
    ref = desc.create(chunk, n_jobs=n_jobs)
    return np.concatenate(list(ref)) if average == "off" else np.asarray(ref)


def bench_set(
    label: str, atoms: list, species: list[int], settings: dict, chunk: int, repeat: int
) -> list[tuple]:
    from dscribe.descriptors import SOAP

    from matxfer.structures import StructureBatch, soap

    chunks = [atoms[k : k + chunk] for k in range(0, len(atoms), chunk)]
    batches = [StructureBatch.from_structures(c) for c in chunks]
    n_sites = sum(len(a) for a in atoms)
    print(
        f"{label}: {len(atoms)} structures, {n_sites} sites, {len(species)} species, {settings}, chunks of {chunk}"
    )
    rows = []
    for average in ("off", "inner"):
        desc = SOAP(species=species, periodic=True, average=average, **settings)
        worst_abs, worst_rel = 0.0, 0.0
        for c, batch in zip(chunks, batches):
            ref = dscribe_rows(desc, c, average, 1)
            mine, names = soap(batch, species, average=average, n_threads=1, **settings)
            assert mine.shape == ref.shape and len(names) == desc.get_number_of_features()
            top = np.abs(ref).max()
            diff = np.abs(mine - ref)
            big = np.abs(ref) > 1e-6 * top
            worst_abs = max(worst_abs, float(diff.max() / top))
            worst_rel = max(worst_rel, float((diff[big] / np.abs(ref[big])).max()))
        t_ref, t_ours = {}, {}
        for n in (1, 2):
            t_ref[n] = best(repeat, lambda n=n, d=desc, a=average: [dscribe_rows(d, c, a, n) for c in chunks])
            t_ours[n] = best(
                repeat,
                lambda n=n, a=average: [
                    soap(b, species, average=a, n_threads=n, **settings) for b in batches
                ],
            )
        for n in (1, 2):
            rows.append(
                (label, average, n, desc.get_number_of_features(), t_ref[n], t_ours[n], worst_abs, worst_rel)
            )
        print(f"  average={average}: max|diff|/max|ref| {worst_abs:.1e}, max elementwise rel {worst_rel:.1e}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perov5", type=int, default=1000, help="first N perov_5 structures (0: all)")
    ap.add_argument("--carbon24", type=int, default=1000, help="first N carbon_24 structures")
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    import matxfer

    print(
        f"dscribe {version('dscribe')}, matxfer {matxfer.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    perov = read_atoms("perov5_valtest_cdvae", args.perov5 or None)
    species = sorted({int(z) for a in perov for z in a.numbers})
    rows += bench_set(
        "perov_5", perov, species, dict(r_cut=5.0, n_max=3, l_max=4, sigma=0.5), args.chunk, args.repeat
    )
    carbon = read_atoms("carbon24_valtest_cdvae", args.carbon24)
    rows += bench_set(
        "carbon_24", carbon, [6], dict(r_cut=5.0, n_max=8, l_max=6, sigma=0.5), args.chunk, args.repeat
    )

    print()
    print(
        "| set | average | threads = n_jobs | features | dscribe s | matxfer s | speed-up | vs dscribe n_jobs=1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    one = {(r[0], r[1]): r[4] for r in rows if r[2] == 1}
    for label, average, n, nf, tr, to, _, _ in rows:
        print(
            f"| {label} | {average} | {n} | {nf:,} | {tr:.2f} | {to:.2f} | {tr / to:.2f}x | {one[label, average] / to:.2f}x |"
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
