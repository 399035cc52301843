#!/usr/bin/env python
"""Composition featurization throughput on real formulas: matxfer vs matminer vs CBFV.

All tools see the same Materials Project formulas (matbench mp_gap, 106,113 rows, formulas repeat
for polymorphs) from the shared data folder:

- matminer (the reference): ``pymatgen.core.Composition(f)`` (what ``StrToComposition`` does) +
  ``ElementProperty.from_preset("magpie").featurize``, on a fixed random subset (``--matminer-n``);
  ``magpie_full`` = ``MultipleFeaturizer([Stoichiometry(), ElementProperty.from_preset("magpie"),
  ValenceOrbital(), IonProperty(fast=True)])`` on a smaller subset (``--matminer-full-n``).
- CBFV: ``CBFV.composition.generate_features(df, elem_prop="magpie")`` on ``--cbfv-n`` formulas
  (default: all). CBFV's "magpie" is its own 22-property table with its own six statistics: the
  same size (132 columns) but not the same numbers, so it gets no parity check.
- matxfer: ``matxfer.featurize(formulas, preset)`` from a Python list and from a polars column, at
  one thread and at all cores, for ``magpie``, ``magpie_full`` and ``xenonpy``, on all formulas.
- 1M formulas: the formulas repeated to ``--big-n`` rows in a polars column, featurized with
  ``magpie`` (float64 and float32), each in a fresh subprocess that reports the time and the peak
  RSS increase (``ru_maxrss`` after the call minus the resident set just before it, with the
  kernel's peak counter reset first where /proc/self/clear_refs allows) relative to the size of
  the output array.

Parity: matxfer and matminer are run on the same subset and the largest relative difference is
printed (and stored), so the speed table compares equal results.

Timings: every matxfer row is the best of ``--repeat`` calls after one warm-up call (the warm-up
builds the preset and the thread pool); matminer and CBFV are timed once (they take seconds to
minutes) after a small untimed warm-up. Seconds include the input conversion (list packing or
polars -> Arrow) and the allocation of the output array: they are end to end from the caller's data.

Usage::

    python benches/compositions.py --quick               # < 1 min
    python benches/compositions.py --out results.json    # default sizes, a few minutes
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "composition" / "dft" / "mp_gap_matbench.csv"
SEED = 20261122

# Targets of the performance issue.
TARGET_RATE_1M = 1_000_000.0  # formulas/s end to end from a polars column (1M in <= 1 s)
TARGET_VS_MATMINER = 2000.0  # x matminer, same run
TARGET_RSS_RATIO = 1.2  # peak RSS increase / output array bytes


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_formulas(path: Path) -> list[str]:
    import pandas as pd

    # keep_default_na=False: the formula "NaN" (sodium nitride) must stay a formula.
    frame = pd.read_csv(path, usecols=["formula"], dtype={"formula": str}, keep_default_na=False)
    return frame["formula"].tolist()


def best_of(fn, repeat: int) -> tuple[float, list[float]]:
    """Best wall time of `repeat` calls (the result is dropped before the next call)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return min(times), times


# --------------------------------------------------------------------------------------------- #
# matminer
# --------------------------------------------------------------------------------------------- #


def matminer_featurizer(preset: str):
    from matminer.featurizers.composition import ElementProperty

    if preset == "magpie":
        return ElementProperty.from_preset("magpie")
    from matminer.featurizers.base import MultipleFeaturizer
    from matminer.featurizers.composition import IonProperty, Stoichiometry, ValenceOrbital

    return MultipleFeaturizer(
        [Stoichiometry(), ElementProperty.from_preset("magpie"), ValenceOrbital(), IonProperty(fast=True)]
    )


def run_matminer(preset: str, formulas: list[str], warmup: list[str]):
    """(seconds, values, feature labels): Composition(f) + featurize, one formula at a time."""
    import numpy as np
    from pymatgen.core import Composition

    featurizer = matminer_featurizer(preset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in warmup:  # loads the element data, not timed
            featurizer.featurize(Composition(f))
        gc.collect()
        t0 = time.perf_counter()
        rows = [featurizer.featurize(Composition(f)) for f in formulas]
        seconds = time.perf_counter() - t0
    return seconds, np.array(rows, dtype=np.float64), featurizer.feature_labels()


def parity(got, reference, names_got, names_ref) -> dict:
    """Largest relative difference between matxfer and matminer on the same formulas."""
    import numpy as np

    same_nan = bool(np.array_equal(np.isnan(got), np.isnan(reference)))
    finite = np.isfinite(reference) & np.isfinite(got)
    err = np.abs(got - reference)[finite]
    scale = np.abs(reference)[finite]
    rel = np.where(err == 0, 0.0, err / np.maximum(scale, np.finfo(float).tiny))
    # as in tests/test_parity_matminer.py: a value is off if it exceeds both rtol and atol
    off = (err > 1e-9 * scale) & (err > 1e-12)
    return {
        "names_equal": list(names_got) == list(names_ref),
        "nan_pattern_equal": same_nan,
        "n_values": int(got.size),
        "max_abs_diff": float(err.max()) if err.size else 0.0,
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "n_off_rtol1e-9": int(off.sum()),
    }


# --------------------------------------------------------------------------------------------- #
# CBFV
# --------------------------------------------------------------------------------------------- #


def run_cbfv(formulas: list[str]):
    """(seconds, n rows out, n skipped) for CBFV generate_features(elem_prop="magpie")."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pkg_resources  # noqa: F401  (CBFV 1.1 reads its tables through it)
        except ImportError:
            # setuptools >= 81 has no pkg_resources; CBFV only needs resource_stream.
            import importlib.util
            import types

            def resource_stream(module_name: str, relative: str):
                # like pkg_resources: relative to the directory of the module (or package)
                origin = importlib.util.find_spec(module_name).origin
                return open(Path(origin).parent / relative, "rb")

            shim = types.ModuleType("pkg_resources")
            shim.resource_stream = resource_stream
            sys.modules["pkg_resources"] = shim
        from CBFV import composition as cbfv

        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            cbfv.generate_features(
                pd.DataFrame({"formula": formulas[:50], "target": 0.0}), elem_prop="magpie"
            )
            frame = pd.DataFrame({"formula": formulas, "target": 0.0})
            gc.collect()
            t0 = time.perf_counter()
            X, _y, _formulae, skipped = cbfv.generate_features(frame, elem_prop="magpie")
            seconds = time.perf_counter() - t0
    n_skipped = len(skipped) if hasattr(skipped, "__len__") else int(skipped or 0)
    return seconds, X.shape, n_skipped


# --------------------------------------------------------------------------------------------- #
# 1M rows in a fresh process
# --------------------------------------------------------------------------------------------- #


def _proc_status_kib(*keys: str) -> dict:
    """Fields of /proc/self/status in KiB (Linux), e.g. VmRSS (resident now), VmHWM (peak)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _rss_now() -> int:
    """Resident set size of this process now, in bytes."""
    status = _proc_status_kib("VmRSS")
    if "VmRSS" in status:
        return status["VmRSS"] * 1024
    import psutil

    return psutil.Process().memory_info().rss


def _hwm() -> int | None:
    """Peak RSS of this address space (VmHWM; resettable through clear_refs), in bytes."""
    status = _proc_status_kib("VmHWM")
    return status["VmHWM"] * 1024 if "VmHWM" in status else None


def _maxrss() -> int:
    """getrusage(RUSAGE_SELF).ru_maxrss in bytes. On Linux it is max(VmHWM, the peak recorded
    when any thread of the process exited), so a clear_refs reset does not always lower it."""
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes if sys.platform == "darwin" else kib_or_bytes * 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def big_child(data: Path, n: int, dtype: str, preset: str, repeat: int, n_threads: int) -> dict:
    """Runs in a fresh interpreter: `n` formulas in a polars column -> featurize; time + peak RSS."""
    import numpy as np
    import polars as pl

    import matxfer

    base = pl.read_csv(data, columns=["formula"], schema_overrides={"formula": pl.String})["formula"]
    if base.null_count():
        raise SystemExit(f"{data}: {base.null_count()} empty formulas")
    reps = -(-n // len(base))
    column = pl.concat([base] * reps, rechunk=True).head(n).rechunk()
    del base
    # Warm-up on a few rows: builds the preset and starts the thread pool (not part of the peak).
    matxfer.featurize(column.head(1000), preset, n_threads=n_threads, dtype=dtype)
    gc.collect()

    maxrss_before_reset = _maxrss()
    reset = _reset_peak()
    rss_before = _rss_now()
    hwm_before = _hwm()
    maxrss_before = _maxrss()
    t0 = time.perf_counter()
    result = matxfer.featurize(column, preset, n_threads=n_threads, dtype=dtype)
    first = time.perf_counter() - t0
    hwm_after = _hwm()
    maxrss_after = _maxrss()
    out_bytes = int(result.values.nbytes)
    shape = list(result.values.shape)
    assert np.isfinite(result.values[:: max(1, n // 1000)]).all()
    del result
    gc.collect()
    _, times = best_of(
        lambda: matxfer.featurize(column, preset, n_threads=n_threads, dtype=dtype), max(0, repeat - 1)
    )
    times = [first] + times
    # Peak during the call minus the resident set just before it. Exact when the peak counter was
    # reset to the current RSS; otherwise ru_maxrss after the call is used, which is an upper
    # bound (it may still hold an earlier, higher peak).
    exact = reset and hwm_before is not None and hwm_after is not None and hwm_before - rss_before < 8 << 20
    peak_after = hwm_after if exact else maxrss_after
    increase = peak_after - rss_before
    return {
        "preset": preset,
        "dtype": dtype,
        "n": n,
        "n_threads": n_threads,
        "shape": shape,
        "seconds_first": first,
        "seconds_best": min(times),
        "seconds_all": times,
        "formulas_per_s": n / min(times),
        "output_bytes": out_bytes,
        "rss_before": rss_before,
        "peak_counter": "VmHWM after clear_refs reset" if exact else "ru_maxrss (upper bound)",
        "peak_exact": exact,
        "hwm_before": hwm_before,
        "hwm_after": hwm_after,
        "maxrss_before_reset": maxrss_before_reset,
        "maxrss_before": maxrss_before,
        "maxrss_after": maxrss_after,
        "peak_rss_increase": increase,
        "peak_rss_increase_over_output": increase / out_bytes,
    }


def run_big(data: Path, n: int, dtype: str, repeat: int, n_threads: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--big-child",
        "--data",
        str(data),
        "--big-n",
        str(n),
        "--big-dtype",
        dtype,
        "--repeat",
        str(repeat),
        "--threads",
        str(n_threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("BIGJSON "):
            return json.loads(line[len("BIGJSON ") :])
    raise RuntimeError(f"1M child failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# --------------------------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------------------------- #


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def print_table(rows: list[dict]) -> str:
    head = ["tool", "preset", "input", "threads", "n formulas", "seconds", "formulas/s", "x matminer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = "-" if r.get("x_matminer") is None else f"{r['x_matminer']:,.0f}x"
        if r.get("ratio_note"):
            ratio += f" ({r['ratio_note']})"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["tool"],
                    r["preset"],
                    r["input"],
                    str(r["threads"]),
                    f"{r['n']:,}",
                    f"{r['seconds']:.4g}",
                    fmt_rate(r["formulas_per_s"]),
                    ratio,
                ]
            )
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (< 1 min)")
    ap.add_argument("--out", type=Path, help="write all measurements to this JSON file")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV with a 'formula' column")
    ap.add_argument("--n", type=int, help="formulas for the matxfer rows (default all; quick 20,000)")
    ap.add_argument("--matminer-n", type=int, help="matminer magpie subset (default 2,000; quick 200)")
    ap.add_argument("--matminer-full-n", type=int, help="matminer magpie_full subset (default 300; quick 50)")
    ap.add_argument("--cbfv-n", type=int, help="CBFV formulas (default all; quick 5,000; 0 skips CBFV)")
    ap.add_argument(
        "--big-n", type=int, help="rows of the big polars run (default 1,000,000; quick 200,000; 0 skips)"
    )
    ap.add_argument(
        "--repeat", type=int, help="timed calls per matxfer row, best is reported (default 3; quick 2)"
    )
    ap.add_argument("--threads", type=int, default=n_cores(), help="'all threads' (default: usable cores)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--big-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--big-dtype", default="float64", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    quick = args.quick
    repeat = args.repeat or (2 if quick else 3)
    big_n = args.big_n if args.big_n is not None else (200_000 if quick else 1_000_000)
    if args.big_child:
        res = big_child(args.data, big_n, args.big_dtype, "magpie", repeat, args.threads)
        print("BIGJSON " + json.dumps(res))
        return 0

    if not args.data.exists():
        print(f"data file not found: {args.data} (pass --data)", file=sys.stderr)
        return 2
    import numpy as np
    import polars as pl

    import matxfer

    t_start = time.time()
    load_start = os.getloadavg()
    all_formulas = load_formulas(args.data)
    n = min(args.n or (20_000 if quick else len(all_formulas)), len(all_formulas))
    rng = random.Random(args.seed)
    formulas = all_formulas if n == len(all_formulas) else rng.sample(all_formulas, n)
    mm_n = args.matminer_n or (200 if quick else 2000)
    mm_full_n = min(args.matminer_full_n or (50 if quick else 300), mm_n)
    cbfv_n = args.cbfv_n if args.cbfv_n is not None else (5000 if quick else len(all_formulas))
    subset = random.Random(args.seed + 1).sample(all_formulas, mm_n)
    warmup = random.Random(args.seed + 2).sample(all_formulas, 20)
    threads_all = args.threads

    print(f"data: {args.data} ({len(all_formulas):,} formulas)")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {n_cores()} usable cores, "
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
    )
    if load_start[0] > 0.5 * n_cores():
        print("WARNING: the machine is busy (load average > cores/2): timings are noisy.")
    print(
        f"sizes: matxfer n={n:,}, matminer magpie n={mm_n:,}, matminer magpie_full n={mm_full_n:,}, "
        f"CBFV n={min(cbfv_n, len(all_formulas)):,}, big n={big_n:,}; matxfer best of {repeat}\n"
    )

    rows: list[dict] = []
    results: dict = {"parity": {}, "big": []}

    # ---- matminer (reference) + parity on the same subset ----
    mm_rate = {}
    for preset, k in (("magpie", mm_n), ("magpie_full", mm_full_n)):
        sub = subset[:k]
        sec, ref, labels = run_matminer(preset, sub, warmup)
        mm_rate[preset] = k / sec
        rows.append(
            {
                "tool": "matminer",
                "preset": preset,
                "input": "pymatgen Composition",
                "threads": 1,
                "n": k,
                "seconds": sec,
                "formulas_per_s": k / sec,
                "x_matminer": 1.0,
            }
        )
        got = matxfer.featurize(sub, preset)
        p = parity(got.values, ref, got.feature_names, labels)
        results["parity"][preset] = p
        print(
            f"parity {preset:12s} on {k:,} formulas: max rel diff {p['max_rel_diff']:.3g}, max abs diff "
            f"{p['max_abs_diff']:.3g}, values off (rtol 1e-9) {p['n_off_rtol1e-9']}, NaN pattern equal "
            f"{p['nan_pattern_equal']}, names equal {p['names_equal']}"
        )
        del ref, got

    # ---- CBFV ----
    if cbfv_n > 0:
        cb = all_formulas[: min(cbfv_n, len(all_formulas))]
        try:
            sec, shape, skipped = run_cbfv(cb)
            rows.append(
                {
                    "tool": "CBFV",
                    "preset": "magpie (CBFV's)",
                    "input": "pandas DataFrame",
                    "threads": 1,
                    "n": len(cb),
                    "seconds": sec,
                    "formulas_per_s": len(cb) / sec,
                    "x_matminer": (len(cb) / sec) / mm_rate["magpie"],
                    "ratio_note": "vs matminer magpie",
                    "output_shape": list(shape),
                    "skipped": skipped,
                }
            )
        except Exception as exc:  # CBFV is optional: report, do not fail the benchmark
            print(f"CBFV skipped: {type(exc).__name__}: {exc}")
            results["cbfv_error"] = f"{type(exc).__name__}: {exc}"

    # ---- matxfer ----
    column = pl.Series("formula", formulas, dtype=pl.String)
    inputs = {"list": formulas, "polars": column}
    thread_counts = sorted({1, threads_all})
    cases = [
        (preset, inp, t, "float64")
        for preset in ("magpie", "magpie_full", "xenonpy")
        for inp in ("list", "polars")
        for t in thread_counts
    ]
    cases.append(("magpie", "polars", threads_all, "float32"))
    for preset, inp, t, dtype in cases:
        data = inputs[inp]

        def call(data=data, preset=preset, t=t, dtype=dtype):
            return matxfer.featurize(data, preset, n_threads=t, dtype=dtype)

        warm = call()
        assert warm.values.shape[0] == n and not warm.rejected
        del warm
        sec, times = best_of(call, repeat)
        rate = n / sec
        ref = mm_rate.get(preset)
        rows.append(
            {
                "tool": "matxfer",
                "preset": preset + ("" if dtype == "float64" else " (float32)"),
                "input": "Python list" if inp == "list" else "polars Series",
                "threads": t,
                "n": n,
                "seconds": sec,
                "seconds_all": times,
                "formulas_per_s": rate,
                "x_matminer": None if ref is None else rate / ref,
            }
        )

    # ---- 1M rows in fresh processes ----
    if big_n > 0:
        for dtype in ("float64", "float32"):
            b = run_big(args.data, big_n, dtype, repeat, threads_all)
            results["big"].append(b)
            rows.append(
                {
                    "tool": "matxfer",
                    "preset": "magpie" + ("" if dtype == "float64" else " (float32)"),
                    "input": "polars Series (fresh process)",
                    "threads": threads_all,
                    "n": big_n,
                    "seconds": b["seconds_best"],
                    "formulas_per_s": b["formulas_per_s"],
                    "x_matminer": b["formulas_per_s"] / mm_rate["magpie"],
                }
            )

    print()
    table = print_table(rows)
    load_end = os.getloadavg()
    print(
        f"\nload average at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; "
        f"total {time.time() - t_start:.0f} s"
    )

    # ---- targets ----
    checks = []
    for b in results["big"]:
        print(
            f"{b['n']:,} formulas, polars -> magpie {b['dtype']}: first call {b['seconds_first']:.3f} s, best "
            f"{b['seconds_best']:.3f} s ({fmt_rate(b['formulas_per_s'])}/s); peak RSS increase "
            f"{b['peak_rss_increase'] / 1e9:.3f} GB for a {b['output_bytes'] / 1e9:.3f} GB output = "
            f"{b['peak_rss_increase_over_output']:.3f}x (RSS before {b['rss_before'] / 1e6:.0f} MB; peak from "
            f"{b['peak_counter']})"
        )
        if b["dtype"] == "float64":
            checks.append(
                (
                    f"magpie polars {b['n']:,} rows >= {fmt_rate(TARGET_RATE_1M)} formulas/s",
                    b["formulas_per_s"],
                    TARGET_RATE_1M,
                    b["formulas_per_s"] >= TARGET_RATE_1M,
                )
            )
        checks.append(
            (
                f"peak RSS increase / output ({b['dtype']}) <= {TARGET_RSS_RATIO}",
                b["peak_rss_increase_over_output"],
                TARGET_RSS_RATIO,
                b["peak_rss_increase_over_output"] <= TARGET_RSS_RATIO,
            )
        )
    best_magpie = max(
        (r for r in rows if r["tool"] == "matxfer" and r["preset"] == "magpie"),
        key=lambda r: r["formulas_per_s"],
    )
    checks.append(
        (
            f"matxfer magpie / matminer magpie >= {TARGET_VS_MATMINER:,.0f}x (best matxfer row: "
            f"{best_magpie['input']}, n={best_magpie['n']:,})",
            best_magpie["x_matminer"],
            TARGET_VS_MATMINER,
            best_magpie["x_matminer"] >= TARGET_VS_MATMINER,
        )
    )
    print()
    for label, value, _target, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {label}: {value:,.3f}")

    if args.out:
        import matminer
        import pymatgen.core

        meta = {
            "command": " ".join([Path(sys.executable).name] + sys.argv),
            "quick": quick,
            "data": str(args.data),
            "n_formulas_file": len(all_formulas),
            "usable_cores": n_cores(),
            "threads_all": threads_all,
            "repeat": repeat,
            "seed": args.seed,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": {
                "matxfer": getattr(matxfer, "__version__", "?"),
                "matminer": getattr(matminer, "__version__", "?"),
                "pymatgen": getattr(pymatgen.core, "__version__", "?"),
                "numpy": np.__version__,
                "polars": pl.__version__,
            },
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        }
        payload = {
            "meta": meta,
            "rows": rows,
            **results,
            "table_markdown": table,
            "checks": [{"check": c[0], "value": c[1], "target": c[2], "pass": c[3]} for c in checks],
        }
        args.out.write_text(json.dumps(payload, indent=1))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
