"""Command line: ``matxfer demo`` and ``matxfer featurize``.

Heavy libraries are imported inside the commands, so ``matxfer --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence


def _read_table(path: Path, column: str):
    import polars as pl

    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".csv", ".csv.gz"):
        # Every column as text: formulas such as "NaN" (sodium nitride) must stay strings.
        frame = pl.read_csv(path, infer_schema=False)
    elif suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        raise SystemExit(f"error: {path}: unsupported file type {suffix!r} (use .csv, .csv.gz or .parquet)")
    if column not in frame.columns:
        raise SystemExit(f"error: {path}: no column {column!r}; columns are {frame.columns}")
    return frame


def _featurize_file(input_path: Path, column: str, preset: str, out: Path, errors: str, n_threads: Optional[int], keep: Sequence[str]):
    import polars as pl

    import matxfer

    frame = _read_table(input_path, column)
    import pyarrow  # noqa: F401  (imported before the clock starts: its import is not featurization)

    start = time.perf_counter()
    result = matxfer.featurize(frame[column], preset, errors=errors, n_threads=n_threads)
    seconds = time.perf_counter() - start
    features = pl.from_numpy(result.values, schema=result.feature_names, orient="row")
    kept = [c for c in keep if c in frame.columns and c != column]
    table = pl.concat([frame.select([column, *kept]), features], how="horizontal")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(out)
    return frame, result, seconds


def _summary(input_name: str, preset: str, out: Path, frame, result, seconds: float) -> str:
    import numpy as np

    n_rows, n_features = result.values.shape
    lines = [
        f"{'input':<22}{input_name}",
        f"{'rows':<22}{n_rows}",
        f"{'preset':<22}{preset} ({n_features} features)",
        f"{'rejected rows':<22}{len(result.rejected)}",
        f"{'featurization time':<22}{seconds * 1e3:.1f} ms ({n_rows / max(seconds, 1e-9):,.0f} formulas/s)",
        f"{'output':<22}{out} ({out.stat().st_size / 1e6:.2f} MB Parquet)",
        "",
        f"{'feature':<40}{'mean':>12}{'std':>12}{'min':>12}{'max':>12}",
    ]
    values = result.values
    for j in range(min(n_features, 8)):
        col = values[:, j]
        lines.append(
            f"{result.feature_names[j]:<40}{np.nanmean(col):>12.4g}{np.nanstd(col):>12.4g}{np.nanmin(col):>12.4g}{np.nanmax(col):>12.4g}"
        )
    for index, text, reason in result.rejected[:10]:
        lines.append(f"rejected row {index}: {text!r}: {reason}")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from matxfer.datasets import dataset_path

    path = dataset_path("expt_gap")
    out = Path(args.out)
    frame, result, seconds = _featurize_file(path, "formula", args.preset, out, "nan", args.n_threads, keep=["band_gap_expt_eV"])
    print("matxfer demo: featurize the shipped matbench expt_gap dataset (4,604 experimental band gaps)\n")
    print(_summary(path.name, args.preset, out, frame, result, seconds))
    return 0


def cmd_featurize(args: argparse.Namespace) -> int:
    input_path = Path(args.input)
    if not input_path.exists():
        raise SystemExit(f"error: {input_path}: no such file")
    out = Path(args.out)
    frame, result, seconds = _featurize_file(input_path, args.column, args.preset, out, args.errors, args.n_threads, keep=args.keep)
    print(_summary(str(input_path), args.preset, out, frame, result, seconds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matxfer", description="Fast featurization and transfer learning for materials.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="featurize the shipped expt_gap dataset to Parquet and print a summary")
    demo.add_argument("--preset", default="magpie")
    demo.add_argument("--out", default="matxfer-demo/expt_gap_magpie.parquet")
    demo.add_argument("--n-threads", type=int, default=None)
    demo.set_defaults(func=cmd_demo)

    feat = sub.add_parser("featurize", help="featurize a column of formulas in a CSV/Parquet file")
    feat.add_argument("input", help=".csv, .csv.gz or .parquet file")
    feat.add_argument("--column", default="formula", help="column holding the formulas (default: formula)")
    feat.add_argument("--preset", default="magpie")
    feat.add_argument("--out", required=True, help="output .parquet file")
    feat.add_argument("--errors", choices=["raise", "nan"], default="raise")
    feat.add_argument("--keep", nargs="*", default=[], help="input columns to copy into the output")
    feat.add_argument("--n-threads", type=int, default=None)
    feat.set_defaults(func=cmd_featurize)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # matxfer input errors name the row and reason
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
