"""Command line: ``matxfer demo``, ``matxfer featurize``, ``matxfer library ...``, ``matxfer predict``.

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


# -- library and predict (matxfer.library) ---------------------------------------------------------
def cmd_library_list(args: argparse.Namespace) -> int:
    import matxfer.library as lib

    frame = lib.search(property=args.property, preset=args.preset, task=args.task, modality=args.modality,
                       dataset=args.dataset, library=args.library)
    cols = ["name", "units", "task", "n_rows", "mae", "roc_auc", "shippable"]
    with _pandas_wide():
        print(frame[cols].to_string(index=False) if len(frame) else "no models (build some: matxfer library build)")
    print(f"\n{len(frame)} model(s)")
    return 0


def cmd_library_show(args: argparse.Namespace) -> int:
    import json

    import matxfer.library as lib

    print(json.dumps(lib.card(args.name, library=args.library), indent=1, sort_keys=True))
    return 0


def cmd_library_scan(args: argparse.Namespace) -> int:
    import numpy as np

    from matxfer.library.scan import scan

    frame = _read_table(Path(args.input), args.column)
    if args.target not in frame.columns:
        raise SystemExit(f"error: {args.input}: no column {args.target!r}")
    y = frame[args.target].cast(float).to_numpy()
    ok = np.isfinite(y)
    result = scan(frame[args.column].to_list(), y, library=args.library, cv=args.cv, n_jobs=args.n_jobs,
                  task=args.task, plot=args.plot, progress=True, models=None,
                  baselines=tuple(args.baselines)) if ok.all() else None
    if result is None:
        raise SystemExit(f"error: {args.input}: column {args.target!r} has {int((~ok).sum())} missing values")
    with _pandas_wide():
        print(result.table.head(args.top).to_string(index=False))
    print(f"\nselected per fold: {result.selected}\n{result.seconds:.1f} s")
    return 0


def cmd_library_build(args: argparse.Namespace) -> int:
    import matxfer.library as lib

    names = lib.build(out=args.out, data_dir=args.data, presets=args.presets, seeds=args.seeds, tasks=args.tasks,
                      n_threads=args.n_threads)
    print(f"{len(names)} models in {args.out or lib.user_dir()}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import polars as pl

    import matxfer.library as lib

    model = lib.load(args.model, library=args.library)
    frame = _read_table(Path(args.input), args.column)
    start = time.perf_counter()
    pred = model.predict(frame[args.column], n_threads=args.n_threads)
    seconds = time.perf_counter() - start
    out = frame.with_columns(pl.Series(args.name or model.card["property"]["name"], pred))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.write_parquet(args.out) if args.out.endswith(".parquet") else out.write_csv(args.out)
    err = model.expected_error
    print(f"{model.name}: {len(pred)} predictions in {seconds:.2f} s ({len(pred) / max(seconds, 1e-9):,.0f} formulas/s) "
          f"-> {args.out}" + (f"; expected error (hold-out MAE) {err:.3g} {model.card['property']['units']}" if err else ""))
    return 0


def _pandas_wide():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 60)


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

    # matxfer library list|show|search|scan|build, matxfer predict
    library = sub.add_parser("library", help="the pretrained model library").add_subparsers(dest="library_command", required=True)
    for verb in ("list", "search"):
        p = library.add_parser(verb, help="list models (search: with filters)")
        for flag in ("--property", "--preset", "--task", "--modality", "--dataset", "--library"):
            p.add_argument(flag, default=None)
        p.set_defaults(func=cmd_library_list)
    show = library.add_parser("show", help="print a model's card")
    show.add_argument("name")
    show.add_argument("--library", default=None)
    show.set_defaults(func=cmd_library_show)
    scan = library.add_parser("scan", help="rank library models as sources for a target file (k-fold CV)")
    scan.add_argument("input", help=".csv or .parquet with a formula column and a target column")
    scan.add_argument("--target", required=True, help="target column")
    scan.add_argument("--column", default="formula")
    scan.add_argument("--task", choices=["regression", "classification"], default="regression")
    scan.add_argument("--cv", type=int, default=5)
    scan.add_argument("--n-jobs", type=int, default=2)
    scan.add_argument("--baselines", nargs="*", default=["gbm", "ridge"])
    scan.add_argument("--plot", default=None, help="bar chart PNG path")
    scan.add_argument("--top", type=int, default=25)
    scan.add_argument("--library", default=None)
    scan.set_defaults(func=cmd_library_scan)
    lbuild = library.add_parser("build", help="rebuild the library from the public datasets (needs torch; resumable)")
    lbuild.add_argument("--out", default=None, help="library directory (default: $MATXFER_LIBRARY or the user cache)")
    lbuild.add_argument("--data", default=None, help="shared data folder (default: ../shared/data or $MATXFER_DATA)")
    lbuild.add_argument("--presets", nargs="*", default=["magpie_full", "fraction", "xenonpy", "cromel"])
    lbuild.add_argument("--seeds", nargs="*", type=int, default=[0])
    lbuild.add_argument("--tasks", nargs="*", default=None, help="<dataset>/<property> keys or dataset names")
    lbuild.add_argument("--n-threads", type=int, default=1, help="torch threads (1: reproducible and fastest on a busy machine)")
    lbuild.set_defaults(func=cmd_library_build)
    pred = sub.add_parser("predict", help="predict a column of formulas with a library model")
    pred.add_argument("model", help="library model name, e.g. mp_gap/band_gap/magpie_full/mlp")
    pred.add_argument("input", help=".csv, .csv.gz or .parquet file")
    pred.add_argument("--column", default="formula")
    pred.add_argument("--out", required=True, help="output .parquet or .csv")
    pred.add_argument("--name", default=None, help="prediction column name (default: the property)")
    pred.add_argument("--library", default=None)
    pred.add_argument("--n-threads", type=int, default=None)
    pred.set_defaults(func=cmd_predict)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError) as err:  # matxfer input errors name the row and reason
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
