"""Out-of-core figures: streaming featurization and graph building with bounded memory, and Dask.

    python benches/streaming.py --rows 10000000 --structures 1000000     # the RESULTS.md run
    python benches/streaming.py --rows 1000000 --structures 100000      # smaller

Each measurement runs in a fresh subprocess so its peak RSS (``ru_maxrss`` of the child) is its own:

* ``stream``: ``matxfer.streaming.featurize_file`` on a CSV of real mp_gap formulas repeated to
  ``--rows`` rows, magpie float32, 200k-row chunks, to Parquet;
* ``memory``: the in-memory path on the same file (polars read, one ``featurize`` call, one
  Parquet write), the baseline the streaming throughput is compared with; run on at most
  ``--memory-rows`` rows so it fits in RAM;
* ``graphs``: ``matxfer.graph_store.write_graph_store`` on perov_5 structures repeated to
  ``--structures`` (JSON lines), cutoff 5 A;
* ``dask``: ``matxfer.dask.featurize`` on a 2-worker LocalCluster vs the local call on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATXFER_SHARED_DATA", REPO.parent / "shared" / "data"))


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line; add the child's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # The child reports its own ru_maxrss (exact); the RUSAGE_CHILDREN maximum is kept as a check
    # (it is the maximum over all children so far, so only a new maximum is that child's own).
    result["peak_rss_mb"] = result.pop("self_maxrss_kb") / 1024
    result["children_max_rss_mb"] = peak / 1024 if peak > before else None
    result["load_after"] = os.getloadavg()
    return result


def make_formula_file(path: Path, n_rows: int) -> None:
    if path.exists() and sum(1 for _ in open(path)) - 1 == n_rows:
        return
    lines = (SHARED / "composition/dft/mp_gap_matbench.csv").read_text().splitlines()[1:]
    with open(path, "w") as fh:
        fh.write("formula,band_gap_pbe_eV\n")
        written = 0
        while written < n_rows:
            block = lines[: n_rows - written]
            fh.write("\n".join(block) + "\n")
            written += len(block)


def make_structure_file(path: Path, n: int) -> None:
    if path.exists() and sum(1 for _ in open(path)) == n:
        return
    lines = (SHARED / "structures/perov5_valtest_cdvae.jsonl").read_text().splitlines(keepends=True)
    with open(path, "w") as fh:
        written = 0
        while written < n:
            block = lines[: n - written]
            fh.writelines(block)
            written += len(block)


STREAM = """
import json, time
from matxfer.streaming import featurize_file
t = time.perf_counter()
s = featurize_file({src!r}, {out!r}, preset="magpie", dtype="float32", keep=["band_gap_pbe_eV"], progress=False)
print(json.dumps({{"rows": s.n_rows, "seconds": time.perf_counter() - t, "self_maxrss_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss, "cpu_s": sum(__import__("os").times()[:2])}}))
"""

MEMORY = """
import json, time
import polars as pl, pyarrow.parquet as pq, pyarrow as pa
import matxfer
t = time.perf_counter()
frame = pl.read_csv({src!r}, infer_schema=False, n_rows={n})
r = matxfer.featurize(frame["formula"], "magpie", errors="nan", dtype="float32")
table = pa.Table.from_arrays([frame["formula"].to_arrow(), frame["band_gap_pbe_eV"].to_arrow(),
                              *[pa.array(r.values[:, j]) for j in range(r.values.shape[1])]],
                             names=["formula", "band_gap_pbe_eV", *r.feature_names])
pq.write_table(table, {out!r}, compression="zstd")
print(json.dumps({{"rows": len(frame), "seconds": time.perf_counter() - t, "self_maxrss_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss, "cpu_s": sum(__import__("os").times()[:2])}}))
"""

GRAPHS = """
import json, time
from matxfer.graph_store import write_graph_store
t = time.perf_counter()
s = write_graph_store({src!r}, {out!r}, cutoff=5.0, chunk_size=5000, progress=False)
print(json.dumps({{"rows": s.n_rows, "seconds": time.perf_counter() - t, "self_maxrss_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss, "cpu_s": sum(__import__("os").times()[:2])}}))
"""

DASK = """
import json, time
import pandas as pd, dask.dataframe as dd, numpy as np
from distributed import Client, LocalCluster
import matxfer, matxfer.dask
frame = pd.read_csv({src!r}, keep_default_na=False, dtype=str, nrows={n})
t = time.perf_counter(); local = matxfer.featurize(frame["formula"], "magpie", dtype="float32").values; t_local = time.perf_counter() - t
with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40) as c, Client(c):
    ddf = dd.from_pandas(frame, npartitions=8).persist()
    t = time.perf_counter(); out = matxfer.dask.featurize(ddf["formula"], "magpie", dtype="float32", n_threads=1).compute(); t_dask = time.perf_counter() - t
assert np.array_equal(out.to_numpy(), local)
print(json.dumps({{"rows": len(frame), "seconds_local": t_local, "seconds_dask": t_dask, "self_maxrss_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss, "cpu_s": sum(__import__("os").times()[:2])}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-rows", type=int, default=2_000_000)
    parser.add_argument("--structures", type=int, default=1_000_000)
    parser.add_argument("--dask-rows", type=int, default=1_000_000)
    parser.add_argument("--work", default=str(REPO / "benches" / "out" / "streaming"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["stream", "memory", "graphs", "dask"])
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    formulas = work / f"formulas_{args.rows}.csv"
    make_formula_file(formulas, args.rows)
    results = {}
    load_start = os.getloadavg()
    if "stream" not in args.skip:
        results["stream"] = _child(STREAM.format(src=str(formulas), out=str(work / "stream.parquet")))
        print(json.dumps({"stream": results["stream"]}), flush=True)
    if "memory" not in args.skip:
        results["memory"] = _child(MEMORY.format(src=str(formulas), out=str(work / "memory.parquet"), n=min(args.rows, args.memory_rows)))
        print(json.dumps({"memory": results["memory"]}), flush=True)
    if "graphs" not in args.skip:
        structures = work / f"structures_{args.structures}.jsonl"
        make_structure_file(structures, args.structures)
        results["graphs"] = _child(GRAPHS.format(src=str(structures), out=str(work / "graph_store")))
        print(json.dumps({"graphs": results["graphs"]}), flush=True)
    if "dask" not in args.skip:
        results["dask"] = _child(DASK.format(src=str(formulas), n=args.dask_rows))
        print(json.dumps({"dask": results["dask"]}), flush=True)
    for name, r in results.items():
        rate = r["rows"] / r["seconds"] if "seconds" in r else r["rows"] / r["seconds_dask"]
        print(f"{name:<8} {json.dumps(r)}  ({rate:,.0f} rows/s)")
    if "stream" in results and "memory" in results:
        s, m = results["stream"], results["memory"]
        print(f"streaming throughput / in-memory throughput: {(s['rows'] / s['seconds']) / (m['rows'] / m['seconds']):.2f} (wall), "
              f"{(s['rows'] / s['cpu_s']) / (m['rows'] / m['cpu_s']):.2f} (CPU time)")
    print(f"load average (1 min) at start {load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    (work / "results.json").write_text(json.dumps({"args": vars(args), "results": results, "load_start": load_start, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
