"""Mutation fuzzing of matxfer's Python API, seeded from ../shared/data.

The Rust example `rust/matxfer-core/examples/fuzz.rs` drives the core directly (millions of
inputs); this driver goes through the public Python functions, the way a user's bad data does,
including what only exists on this side: the array constructors (`StructureBatch.from_arrays`),
the str/bytes/None handling of `featurize` and the argument conversion of every call.

Inputs, each mutated from real data:
- formulas: batches of mutated composition strings (plus None, numbers, lone surrogates) through
  `featurize(..., errors="nan")`; every row must come back, in order, and rejected rows must be
  named.
- files: CIF, POSCAR, extended XYZ and JSON-lines text (CIFs of ../shared/data/cif, the JSON lines
  of ../shared/data/structures and POSCAR/XYZ written from them) with bytes, lines and numbers
  mutated, through `StructureBatch.from_string`;
- arrays: lattices, coordinates and species with entries set to NaN/inf/huge/tiny/negative,
  shapes changed and types swapped, through `StructureBatch.from_arrays`.
Every structure that is accepted then goes through `neighbor_list`, `build_graphs`,
`density_features`, `radial_distribution` and `sine_coulomb_eigenvalues` with default settings.

Every input runs in a child process with a memory cap (address space 6 GB, MATXFER_MAX_MEMORY=1G):
an interpreter abort, a crash, a hang (no progress for --hang-seconds) or an exception that is not
a matxfer exception is a finding, printed with the chunk seed that reproduces it. Exit status 1 if
anything was found.

    python benches/fuzz.py --formulas 200000 --files 20000 --arrays 20000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHUNK = {"formulas": 2000, "files": 200, "arrays": 200}


# ---------------------------------------------------------------------------------------- seeds
def load_seeds(data: Path) -> dict:
    import csv

    formulas = []
    for path in sorted((data / "composition").rglob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames and "formula" in reader.fieldnames:
                formulas += [row["formula"] for _, row in zip(range(3000), reader)]
    records = []
    for path in sorted((data / "structures").glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            records += [json.loads(line) for _, line in zip(range(200), fh)]
    cifs = [p.read_text(encoding="utf-8", errors="replace") for p in sorted((data / "cif").glob("*.cif"))]
    return {"formulas": formulas, "records": records, "cifs": cifs}


def poscar(rec: dict) -> str:
    species = rec["species"]
    order = list(dict.fromkeys(species))
    lines = [rec.get("id", "x"), "1.0"] + [" ".join(f"{v:.10f}" for v in row) for row in rec["lattice"]]
    lines += [" ".join(order), " ".join(str(species.count(s)) for s in order), "Direct"]
    for s in order:
        lines += [" ".join(f"{v:.10f}" for v in c) for c, sp in zip(rec["frac_coords"], species) if sp == s]
    return "\n".join(lines) + "\n"


def extxyz(rec: dict) -> str:
    import numpy as np

    lattice = np.asarray(rec["lattice"], float)
    cart = np.asarray(rec["frac_coords"], float) @ lattice
    flat = " ".join(f"{v:.10f}" for v in lattice.ravel())
    lines = [str(len(rec["species"])), f'Lattice="{flat}" Properties=species:S:1:pos:R:3 pbc="T T T"']
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(rec["species"], cart)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- mutation
PIECES = ["(", ")", "[", "]", ".", "·", "*", "e", "-", "+", "0", "1", ".5", "1e308", "1e-320", "9e999", "nan", "inf",
          "H2O", "Fe", "Xx", " ", "\x00", "é", "\ud800", "(((((", ")))))", "NaN", "18446744073709551615", "'", '"',
          "\n", "_symmetry_space_group_name_H-M 'P 21/n'", "loop_", "_atom_site_fract_x", "?", "-1e300"]


def mutate_text(rng: random.Random, text: str, n_max: int = 4) -> str:
    s = text
    for _ in range(1 + rng.randrange(n_max)):
        at = rng.randrange(len(s) + 1)
        op = rng.randrange(7)
        if op == 0 and s:
            s = s[:at] + s[at + 1 + rng.randrange(8):]
        elif op == 1:
            s = s[:at] + rng.choice(PIECES) + s[at:]
        elif op == 2 and s:  # replace a number
            digits = [i for i, ch in enumerate(s) if ch.isdigit()]
            if digits:
                i = rng.choice(digits)
                s = s[:i] + rng.choice(["1e308", "0", "-0", "nan", "1e-300", "999999999999", "-5", "2.5"]) + s[i + 1:]
        elif op == 3 and s:  # duplicate or drop a line
            lines = s.split("\n")
            k = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines.insert(k, lines[k])
            else:
                del lines[k]
            s = "\n".join(lines)
        elif op == 4:
            s = s[:at] + chr(rng.randrange(0x20, 0x3000)) + s[at:]
        elif op == 5 and s:
            s = s[:at]
        else:
            s = s[:at] + s[at:][::-1][:5] + s[at:]
    return s


def mutate_arrays(rng: random.Random, rec: dict):
    import numpy as np

    lattice = np.asarray(rec["lattice"], float)
    coords = np.asarray(rec["frac_coords"], float)
    species: list = list(rec["species"])
    for _ in range(1 + rng.randrange(3)):
        op = rng.randrange(9)
        special = rng.choice([np.nan, np.inf, -np.inf, 1e308, 1e-300, -1.0, 0.0, 1e6, 2.0 ** 63])
        square = lattice.shape == (3, 3)
        if op == 0 and square:
            lattice[rng.randrange(3), rng.randrange(3)] = special
        elif op == 1:
            lattice = lattice * rng.choice([1e-100, 1e-6, 1e6, 1e100, 0.0, -1.0])
        elif op == 2 and square:  # nearly singular cell
            lattice[2] = lattice[0] + rng.choice([0.0, 1e-12, 1e-6]) * lattice[1]
        elif op == 3 and coords.ndim == 2 and coords.shape[0] and coords.shape[1]:
            coords[rng.randrange(coords.shape[0]), rng.randrange(coords.shape[1])] = special
        elif op == 4 and len(coords) and coords.shape[1:] == (3,):  # overlapping atoms
            coords = np.vstack([coords, coords[:1]])
            species = species + species[:1]
        elif op == 5 and species:
            species[rng.randrange(len(species))] = rng.choice([0, -3, 119, 2 ** 40, "Xx", "", None, 3.5, True, "Fe"])
        elif op == 6:
            coords = coords[:, : rng.randrange(4)] if rng.random() < 0.5 else coords[: rng.randrange(len(coords) + 1)]
        elif op == 7:
            lattice = lattice[: rng.randrange(4)]
        else:
            coords = np.tile(coords, (rng.choice([1, 10, 100]), 1))
            species = species * (len(coords) // max(len(species), 1))
    pbc = rng.choice([True, True, False, (True, True, False), (1, 0, 1), "TTT", None])
    return lattice, coords, species, pbc


# ---------------------------------------------------------------------------------------- child
def run_chunk(kind: str, seed: int, chunk: int, n: int, data: Path) -> dict:
    """Run one chunk in this process; raise on anything that is not a matxfer exception."""
    import numpy as np

    import matxfer
    from matxfer.graphs import build_graphs
    from matxfer.structures import (
        StructureBatch,
        density_features,
        neighbor_list,
        radial_distribution,
        sine_coulomb_eigenvalues,
    )

    seeds = load_seeds(data)
    rng = random.Random(seed * 1_000_003 + chunk)
    stats = {"inputs": 0, "refused": 0, "structures_called": 0}

    def downstream(batch):
        for call in (lambda: neighbor_list(batch, 5.0), lambda: build_graphs(batch, 5.0), lambda: density_features(batch),
                     lambda: radial_distribution(batch), lambda: sine_coulomb_eigenvalues(batch)):
            try:
                call()
            except matxfer.MatxferError:
                stats["refused"] += 1
        stats["structures_called"] += len(batch)

    if kind == "formulas":
        batch: list = [mutate_text(rng, rng.choice(seeds["formulas"]), 3) for _ in range(n)]
        for _ in range(n // 100):
            batch[rng.randrange(n)] = rng.choice([None, 3, b"NaCl", "\ud800Fe", "", "Fe" * 5000])
        result = matxfer.featurize(batch, "magpie", errors="nan")
        values = np.asarray(result.values)
        assert values.shape[0] == n, ("rows lost", values.shape, n)
        rejected = {r.index for r in result.rejected}
        assert all(0 <= i < n for i in rejected)
        good = np.setdiff1d(np.arange(n), sorted(rejected))
        assert np.isfinite(values[good]).all(), "non-finite features in an accepted row"
        assert np.isnan(values[sorted(rejected)]).all(), "a rejected row is not NaN"
        stats["inputs"] += n
        stats["refused"] += len(rejected)
    elif kind == "files":
        for _ in range(n):
            rec = rng.choice(seeds["records"])
            fmt, text = rng.choice([("cif", rng.choice(seeds["cifs"])), ("poscar", poscar(rec)), ("xyz", extxyz(rec)),
                                    ("jsonl", json.dumps(rec))])
            text = mutate_text(rng, text)
            stats["inputs"] += 1
            try:
                batch = StructureBatch.from_string(text, fmt)
            except matxfer.MatxferError:
                stats["refused"] += 1
                continue
            downstream(batch)
    else:
        for _ in range(n):
            lattice, coords, species, pbc = mutate_arrays(rng, rng.choice(seeds["records"]))
            stats["inputs"] += 1
            try:
                batch = StructureBatch.from_arrays(lattice, coords, species, pbc=pbc)
            except matxfer.MatxferError:
                stats["refused"] += 1
                continue
            downstream(batch)
    return stats


def child_main(args) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    stats = run_chunk(args.kind, args.seed, args.chunk, args.n, Path(args.data))
    print(json.dumps(stats))


# --------------------------------------------------------------------------------------- parent
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formulas", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=5_000)
    ap.add_argument("--arrays", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--hang-seconds", type=float, default=300)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args)
        return 0
    env = dict(os.environ, MATXFER_MAX_MEMORY="1G", MATXFER_NUM_THREADS="1")
    findings = []
    print(f"{'kind':10s} {'inputs':>9s} {'refused':>9s} {'structures':>11s} {'seconds':>8s} findings")
    for kind in ("formulas", "files", "arrays"):
        total = getattr(args, kind)
        totals = {"inputs": 0, "refused": 0, "structures_called": 0}
        t0 = time.perf_counter()
        n_findings = 0
        for chunk in range((total + CHUNK[kind] - 1) // CHUNK[kind]):
            n = min(CHUNK[kind], total - chunk * CHUNK[kind])
            cmd = [sys.executable, __file__, "--child", "--kind", kind, "--seed", str(args.seed), "--chunk", str(chunk),
                   "--n", str(n), "--data", args.data]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.hang_seconds)
            except subprocess.TimeoutExpired:
                findings.append(f"{kind} chunk {chunk} (seed {args.seed}): no progress for {args.hang_seconds} s")
                n_findings += 1
                continue
            if proc.returncode != 0:
                what = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
                findings.append(f"{kind} chunk {chunk} (seed {args.seed}): {what}\n{proc.stderr[-2000:]}")
                n_findings += 1
                continue
            for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                totals[k] += v
        print(f"{kind:10s} {totals['inputs']:9d} {totals['refused']:9d} {totals['structures_called']:11d} "
              f"{time.perf_counter() - t0:8.0f} {n_findings}", flush=True)
    for f in findings:
        print("FINDING:", f)
    print(f"{len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
