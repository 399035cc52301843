"""The ``matxfer`` command line.

Commands: ``featurize`` (formulas or structures, streamed to Parquet), ``graphs`` (structures to an
on-disk graph store), ``pretrain`` (a source MLP), ``transfer`` (a target model from a source, with a
cross-validation table and plots) and ``demo`` (the whole story on shipped data).

Only the standard library is imported here; numpy, polars, pyarrow and torch are imported inside
the command that needs them, so ``matxfer --help`` starts at once. Errors are one line on stderr
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from matxfer.exceptions import MatxferError

EXIT_OK, EXIT_NOTHING_DONE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _progress(args) -> Optional[bool]:
    return False if args.quiet else None  # None: on when stderr is a terminal


def _say(args, text: str = "") -> None:
    if not args.quiet:
        print(text, flush=True)


def _check_out_file(path: str) -> Path:
    from matxfer.streaming import check_writable

    out = Path(path)
    check_writable(out)
    return out


def _check_out_dir(path: str) -> Path:
    from matxfer.streaming import check_writable

    out = Path(path)
    if out.exists() and not out.is_dir():
        from matxfer.streaming import InputFileError

        raise InputFileError(f"{out}: exists and is not a folder")
    check_writable(out / ".probe")
    return out


# --------------------------------------------------------------------------------------- featurize
def cmd_featurize(args: argparse.Namespace) -> int:
    from matxfer import streaming

    source = Path(args.input)
    if not source.exists():
        raise streaming.InputFileError(f"{source}: no such file")
    out = _check_out_file(args.out)
    report = None if args.no_error_report else (args.error_report or "auto")
    structures = args.structures or source.is_dir() or _looks_like_structures(source)
    common = dict(
        preset=args.preset,
        drop_invalid=args.drop_invalid,
        error_report=report,
        dtype=args.dtype,
        n_threads=args.n_threads,
        progress=_progress(args),
    )
    if structures:
        summary = streaming.featurize_structures_file(source, out, chunk_size=args.chunk_size or streaming.DEFAULT_STRUCTURE_CHUNK, **common)
    else:
        summary = streaming.featurize_file(
            source, out, column=args.column, keep=args.keep, chunk_size=args.chunk_size or streaming.DEFAULT_CHUNK_SIZE, **common
        )
    _say(args, "\n".join(summary.lines()))
    if summary.n_rows == summary.n_rejected:
        print(f"error: {source}: no row could be featurized ({summary.n_rows} rows)", file=sys.stderr)
        return EXIT_NOTHING_DONE
    return EXIT_OK


def _looks_like_structures(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".xyz", ".extxyz", ".cif", ".mcif")):
        return True
    if name.endswith((".jsonl", ".ndjson")):
        import gzip
        import json

        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        return False
                    return isinstance(record, dict) and "lattice" in record and "species" in record
    return False


# --------------------------------------------------------------------------------------- graphs
def cmd_graphs(args: argparse.Namespace) -> int:
    from matxfer import graph_store, streaming

    source = Path(args.input)
    if not source.exists():
        raise streaming.InputFileError(f"{source}: no such file or folder")
    out = _check_out_dir(args.out)
    summary = graph_store.write_graph_store(
        source,
        out,
        cutoff=args.cutoff,
        max_neighbors=args.max_neighbors,
        target=args.target,
        chunk_size=args.chunk_size,
        n_threads=args.n_threads,
        progress=_progress(args),
    )
    _say(args, "\n".join(summary.lines()))
    if summary.n_rows == summary.n_rejected:
        print(f"error: {source}: no structure could be converted ({summary.n_rows} rows)", file=sys.stderr)
        return EXIT_NOTHING_DONE
    return EXIT_OK


# --------------------------------------------------------------------------------------- pretrain
def _load_xy(path: Path, column: str, target: str, preset: str, n_threads, max_rows: Optional[int] = None):
    """Formulas, descriptors and targets of a (small enough to hold) training table; rows whose
    formula or target is unusable are left out and counted."""
    import numpy as np

    import matxfer
    from matxfer.streaming import iter_table_chunks

    formulas, targets = [], []
    for chunk, _ in iter_table_chunks(path, [column, target]):
        formulas.extend(chunk.column(column).to_pylist())
        targets.extend(chunk.column(target).to_pylist())
        if max_rows and len(formulas) >= max_rows:
            break
    if max_rows:
        formulas, targets = formulas[:max_rows], targets[:max_rows]
    y = np.array([_to_float(v) for v in targets], dtype=np.float64)
    result = matxfer.featurize(formulas, preset, errors="nan", n_threads=n_threads)
    ok = np.isfinite(y)
    ok[[r.index for r in result.rejected]] = False
    n_dropped = int((~ok).sum())
    return [f for f, k in zip(formulas, ok) if k], result.values[ok], y[ok], n_dropped


def _to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def cmd_pretrain(args: argparse.Namespace) -> int:
    import time

    from matxfer.nn import save_model
    from matxfer.transfer import default_source_config, pretrain_mlp

    out = _check_out_dir(args.out)
    formulas, X, y, n_dropped = _load_xy(Path(args.input), args.column, args.target, args.preset, args.n_threads, args.max_rows)
    if len(y) == 0:
        print(f"error: {args.input}: no usable training rows", file=sys.stderr)
        return EXIT_NOTHING_DONE
    _say(args, f"training a source MLP on {len(y):,} rows ({n_dropped:,} left out: bad formula or target), {args.epochs} epochs")
    start = time.perf_counter()
    config = default_source_config(epochs=args.epochs, progress=not args.quiet and sys.stderr.isatty(), seed=args.seed)
    model = pretrain_mlp(X, y, hidden=tuple(args.hidden), config=config)
    save_model(model, out, metadata={"preset": args.preset, "target": args.target, "n_rows": len(y), "input": str(args.input)})
    _say(args, f"saved {out} in {time.perf_counter() - start:.1f} s")
    return EXIT_OK


# --------------------------------------------------------------------------------------- transfer
STRATEGIES = ("delta", "finetune", "frozen", "scratch")


def _strategy(name: str, seed: int, epochs: Optional[int]):
    from matxfer.transfer import Delta, FineTune, FromScratch, FrozenFeatures, default_target_config

    config = default_target_config(**({"epochs": epochs} if epochs else {}))
    kinds = {
        "delta": lambda: Delta(output_floor=None, seed=seed, target_config=config),
        "finetune": lambda: FineTune(seed=seed, target_config=config),
        "frozen": lambda: FrozenFeatures(head="ridge", seed=seed, target_config=config),
        "scratch": lambda: FromScratch(seed=seed, target_config=config),
    }
    return kinds[name]()


def cmd_transfer(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from matxfer.nn import load_model
    from matxfer.transfer import cross_validate, learning_curve, learning_curve_plot, parity_plot

    if args.folds < 2:
        print(f"error: --folds must be at least 2, got {args.folds}", file=sys.stderr)
        return EXIT_ERROR
    out = _check_out_dir(args.out)
    source_dir = Path(args.source)
    if not (source_dir / "model.json").exists():
        from matxfer.streaming import InputFileError

        raise InputFileError(f"{source_dir}: not a saved model (no model.json); make one with `matxfer pretrain`")
    with open(source_dir / "model.json") as fh:
        preset = json.load(fh).get("metadata", {}).get("preset", args.preset)
    source = load_model(source_dir)
    formulas, X, y, n_dropped = _load_xy(Path(args.input), args.column, args.target, preset, args.n_threads)
    if len(y) < args.folds * 2:
        print(f"error: {args.input}: {len(y)} usable rows, too few for {args.folds}-fold cross-validation", file=sys.stderr)
        return EXIT_NOTHING_DONE
    _say(args, f"{args.input}: {len(y):,} rows ({n_dropped:,} left out), descriptors {preset}, source {source_dir}")
    from matxfer.transfer import composition_keys, grouped_folds

    keys = composition_keys(formulas)
    n_groups = len(set(keys.tolist()))
    n_repeated = len(keys) - n_groups
    grouped = args.group_by == "composition" or (args.group_by == "auto" and n_repeated > 0)
    groups = keys if grouped else None
    if grouped:
        if n_groups < args.folds:
            print(f"error: {args.input}: {n_groups} distinct compositions, too few for {args.folds} folds that keep "
                  f"each composition whole (--group-by row splits rows instead)", file=sys.stderr)
            return EXIT_NOTHING_DONE
        splits = grouped_folds(keys, y, args.folds, 18012019)
        _say(args, f"folds keep each reduced composition whole ({n_groups:,} compositions; {n_repeated:,} rows repeat one)")
    else:
        from sklearn.model_selection import KFold

        splits = list(KFold(n_splits=args.folds, shuffle=True, random_state=18012019).split(X))
        if n_repeated:
            print(f"warning: --group-by row: {n_repeated:,} rows repeat the reduced composition of another row, and a "
                  f"composition's rows may be split between training and test folds (optimistic CV error)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in dict.fromkeys([args.strategy, "scratch"]):
        strategy = _strategy(name, args.seed, args.epochs)
        if name != "scratch":
            strategy.use_source(source)
        results[name] = cross_validate(strategy, X, y, cv=splits, name=name, groups=groups)
    table = _cv_table(results)
    _say(args, table)
    (out / "cv.md").write_text(table + "\n")
    best = results[args.strategy]
    fold_of = np.full(len(y), -1)
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k
    _write_predictions(out / "predictions.csv", formulas, y, {k: r.predictions for k, r in results.items()}, fold_of)
    parity_plot(y, best.predictions, str(out / "parity.png"), title=f"{args.strategy}, {args.folds}-fold CV", unit=args.unit)
    if args.learning_curve:
        sizes = [s for s in (50, 200, 1000) if s < 0.8 * len(y)] + [None]
        curves = {}
        for name in results:
            strategy = _strategy(name, args.seed, args.epochs)
            if name != "scratch":
                strategy.use_source(source)
            curves[name] = learning_curve(strategy, X, y, sizes=sizes, n_repeats=1, groups=groups)
        learning_curve_plot(curves, str(out / "learning_curve.png"), unit=args.unit)
    _say(args, f"wrote {out}/cv.md, predictions.csv, parity.png" + (", learning_curve.png" if args.learning_curve else ""))
    return EXIT_OK


def _cv_table(results) -> str:
    lines = ["| model | MAE | MAE std | RMSE | R2 |", "|---|---|---|---|---|"]
    for name, r in results.items():
        s = r.summary()
        lines.append(f"| {name} | {s['mae']:.4f} | {s['mae_std']:.4f} | {s['rmse']:.4f} | {s['r2']:.4f} |")
    return "\n".join(lines)


def _write_predictions(path: Path, formulas, y, predictions: dict, fold_of) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["formula", "measured", "fold", *[f"predicted_{k}" for k in predictions]])
        for i, formula in enumerate(formulas):
            writer.writerow([formula, repr(float(y[i])), int(fold_of[i]),
                             *[f"{float(p[i]):.6g}" for p in predictions.values()]])


# --------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from matxfer import demo

    return demo.run(
        out=Path(args.out),
        quick=args.quick,
        n_threads=args.n_threads,
        quiet=args.quiet,
        progress=_progress(args),
        jobs=args.jobs,
    )


# --------------------------------------------------------------------------------------- parser
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary (errors still go to stderr)")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common.add_argument("--n-threads", type=int, default=None, help="threads for the Rust core (default: MATXFER_NUM_THREADS or all cores)")
    return common


# -- library and predict (matxfer.library) ---------------------------------------------------------
def _read_table(path: Path, column: str):
    """A whole (target-sized) table with every column as text, so formulas such as "NaN" stay strings."""
    import polars as pl

    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".csv", ".csv.gz"):
        frame = pl.read_csv(path, infer_schema=False)
    elif suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r} (use .csv, .csv.gz or .parquet)")
    if column not in frame.columns:
        raise ValueError(f"{path}: no column {column!r}; columns are {frame.columns}")
    return frame


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
    from matxfer.library.builder import BuildConfig

    changes: Dict[str, Any] = {}
    if args.hidden is not None:
        changes["hidden"] = tuple(args.hidden)
    if args.max_train_rows is not None:
        changes["max_train_rows"] = args.max_train_rows
    if args.hidden_large is not None:
        changes["hidden_large"] = tuple(args.hidden_large)
    for field in ("max_train_rows_large", "large_from_rows"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    config = BuildConfig(**changes)  # checks the values before any work
    # One torch thread unless asked: reproducible, and the fastest on a busy machine.
    names = lib.build(out=args.out, data_dir=args.data, presets=args.presets, seeds=args.seeds, tasks=args.tasks,
                      n_threads=args.n_threads or 1, modalities=args.modalities, config=config)
    print(f"{len(names)} models in {args.out or lib.user_dir()}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    import polars as pl

    import matxfer.library as lib

    model = lib.load(args.model, library=args.library)
    start = time.perf_counter()
    if model.card["modality"] == "structure":
        # a structure model reads a structure file (CIF, POSCAR, extxyz, JSON lines), one row per structure
        from matxfer.structures import read_structures

        batch = read_structures(args.input)
        start = time.perf_counter()
        pred = model.predict(batch, n_threads=args.n_threads)
        frame = pl.DataFrame({"index": range(len(batch)), "id": [None if i is None else str(i) for i in batch.ids]},
                             schema={"index": pl.Int64, "id": pl.String})
        unit = "structures"
    else:
        frame = _read_table(Path(args.input), args.column)
        start = time.perf_counter()
        pred = model.predict(frame[args.column], n_threads=args.n_threads)
        unit = "formulas" if model.card["modality"] == "composition" else "molecules"
    seconds = time.perf_counter() - start
    out = frame.with_columns(pl.Series(args.name or model.card["property"]["name"], pred))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.write_parquet(args.out) if args.out.endswith(".parquet") else out.write_csv(args.out)
    err = model.expected_error
    print(f"{model.name}: {len(pred)} predictions in {seconds:.2f} s ({len(pred) / max(seconds, 1e-9):,.0f} {unit}/s) "
          f"-> {args.out}" + (f"; expected error (hold-out MAE) {err:.3g} {model.card['property']['units']}" if err else ""))
    return 0


def _pandas_wide():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 60)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matxfer",
        description="Fast featurization and transfer learning for materials. `matxfer <command> --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    common = _common()

    demo = sub.add_parser("demo", parents=[common], help="the whole story on shipped data: transfer from DFT to experimental band gaps",
                          description="Featurize the shipped matbench expt_gap set, take the shipped library model "
                          "mp_gap/band_gap/magpie_full/mlp (Materials Project DFT band gaps, numpy) as the source, transfer it with "
                          "Delta learning (a boosted head) and compare it in 5-fold CV with gradient boosting on the same descriptors, "
                          "a network from scratch, the source alone and the published matbench leaderboard; a learning curve and "
                          "plots. No network access, no torch.")
    demo.add_argument("--out", default="matxfer-demo", help="output folder (default: matxfer-demo)")
    demo.add_argument("--quick", action="store_true", help="a small setting for tests (500 rows, 3 folds, smaller models)")
    demo.add_argument("--jobs", type=int, default=None, help="model fits run at once in worker processes (default: one per "
                      "core, at most 4; the results do not depend on it)")
    demo.set_defaults(func=cmd_demo)

    feat = sub.add_parser("featurize", parents=[common], help="formulas or structures -> Parquet, streamed in chunks",
                          description="Featurize a column of formulas (.csv, .tsv, .parquet, .jsonl, optionally .gz) or structures "
                          "(.extxyz, .jsonl with lattice/species/frac_coords, .cif or a folder of .cif) into a Parquet file, chunk by "
                          "chunk. Every input row gives one output row in order; rows that cannot be featurized keep their place "
                          "with null features and are listed in <out>.errors.csv (row = 0-based data row, input, reason).")
    feat.add_argument("input", help="input file (or folder of CIF files)")
    feat.add_argument("--out", "-o", required=True, help="output .parquet file")
    feat.add_argument("--column", default="formula", help="column holding the formulas (default: formula)")
    feat.add_argument("--structures", action="store_true", help="the input holds structures (guessed from the file otherwise)")
    feat.add_argument("--preset", default="magpie", help="descriptor preset: magpie, magpie_full, xenonpy, cromel, fraction, ion_property, ion_property_fast, stats:<table>; for "
                      "structures also ward2017, crystalnn_ops, ofm (structure features instead of composition + density)")
    feat.add_argument("--keep", nargs="*", default=[], metavar="COLUMN", help="input columns to copy into the output")
    feat.add_argument("--drop-invalid", action="store_true", help="leave rejected rows out of the output instead of null rows")
    feat.add_argument("--error-report", default=None, metavar="PATH", help="where to list rejected rows (default: <out>.errors.csv)")
    feat.add_argument("--no-error-report", action="store_true", help="do not write the error report")
    feat.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="feature dtype (default: float64)")
    feat.add_argument("--chunk-size", type=int, default=None, help="rows per chunk (default 200,000 formulas or 5,000 structures)")
    feat.set_defaults(func=cmd_featurize)

    graphs = sub.add_parser("graphs", parents=[common], help="structures -> a memory-mappable graph store on disk",
                            description="Build crystal graphs chunk by chunk into a folder of raw little-endian arrays plus "
                            "index.json (see docs/cli.md); matxfer.nn.GraphStoreData trains from it without loading it whole.")
    graphs.add_argument("input", help=".extxyz, .jsonl, .cif or a folder of .cif files")
    graphs.add_argument("--out", "-o", required=True, help="output folder")
    graphs.add_argument("--cutoff", type=float, default=5.0, help="neighbor cutoff in angstrom (default 5)")
    graphs.add_argument("--max-neighbors", type=int, default=None, help="keep at most this many nearest neighbors per atom")
    graphs.add_argument("--target", default=None, help="JSON-lines field (or extxyz info key) stored as the training target")
    graphs.add_argument("--chunk-size", type=int, default=5_000, help="structures per chunk (default 5,000)")
    graphs.set_defaults(func=cmd_graphs)

    pre = sub.add_parser("pretrain", parents=[common], help="train a source MLP on a (large, computed) table and save it",
                         description="Featurize a table of formulas and train a descriptor MLP on one target column; saved with "
                         "matxfer.nn.save_model (model.json + weights).")
    pre.add_argument("input", help=".csv, .tsv, .parquet or .jsonl with a formula column and a target column")
    pre.add_argument("--target", required=True, help="target column")
    pre.add_argument("--out", "-o", required=True, help="output folder for the model")
    pre.add_argument("--column", default="formula")
    pre.add_argument("--preset", default="magpie")
    pre.add_argument("--epochs", type=int, default=30)
    pre.add_argument("--hidden", type=int, nargs="+", default=[512, 256, 128])
    pre.add_argument("--max-rows", type=int, default=None, help="use only the first N rows")
    pre.add_argument("--seed", type=int, default=0)
    pre.set_defaults(func=cmd_pretrain)

    tr = sub.add_parser("transfer", parents=[common], help="adapt a source model to a small target table; CV table and plots",
                        description="Cross-validate a transfer strategy from a saved source model against the same network trained "
                        "from scratch; writes cv.md, predictions.csv (out-of-fold), parity.png and learning_curve.png.")
    tr.add_argument("input", help="target table with a formula column and a target column")
    tr.add_argument("--target", required=True)
    tr.add_argument("--source", required=True, help="folder written by `matxfer pretrain`")
    tr.add_argument("--out", "-o", required=True, help="output folder")
    tr.add_argument("--strategy", choices=STRATEGIES, default="delta", help="default: delta (the best single strategy in benches/RESULTS.md)")
    tr.add_argument("--column", default="formula")
    tr.add_argument("--preset", default="magpie", help="used when the source model does not record its preset")
    tr.add_argument("--folds", type=int, default=5)
    tr.add_argument("--group-by", choices=["auto", "composition", "row"], default="auto",
                    help="CV folds (and the learning curve's test set) keep rows of one reduced composition together: "
                         "'auto' (default) does so when a composition repeats (several temperatures, measurements), "
                         "'row' splits rows (KFold, seed 18012019)")
    tr.add_argument("--epochs", type=int, default=None, help="target training epochs (default 150 with early stopping)")
    tr.add_argument("--no-learning-curve", dest="learning_curve", action="store_false")
    tr.add_argument("--unit", default="", help="unit of the target, for the plots")
    tr.add_argument("--seed", type=int, default=0)
    tr.set_defaults(func=cmd_transfer)

    # matxfer library list|show|search|scan|build, matxfer predict
    library = sub.add_parser("library", help="the pretrained model library").add_subparsers(dest="library_command", required=True)
    for verb in ("list", "search"):
        p = library.add_parser(verb, parents=[common], help="list models (search: with filters)")
        for flag in ("--property", "--preset", "--task", "--modality", "--dataset", "--library"):
            p.add_argument(flag, default=None)
        p.set_defaults(func=cmd_library_list)
    show = library.add_parser("show", parents=[common], help="print a model's card")
    show.add_argument("name")
    show.add_argument("--library", default=None)
    show.set_defaults(func=cmd_library_show)
    scan = library.add_parser("scan", parents=[common], help="rank library models as sources for a target file (k-fold CV)")
    scan.add_argument("input", help=".csv or .parquet with a formula column and a target column")
    scan.add_argument("--target", required=True, help="target column")
    scan.add_argument("--column", default="formula")
    scan.add_argument("--task", choices=["regression", "classification"], default="regression")
    scan.add_argument("--cv", type=int, default=5)
    scan.add_argument("--n-jobs", type=int, default=2)
    scan.add_argument("--baselines", nargs="*", default=["gbm", "ridge"], choices=["gbm", "rf", "ridge", "scratch"],
                      help="no-source baselines on the same folds (gbm and rf: settings by inner 3-fold CV)")
    scan.add_argument("--plot", default=None, help="bar chart PNG path")
    scan.add_argument("--top", type=int, default=25)
    scan.add_argument("--library", default=None)
    scan.set_defaults(func=cmd_library_scan)
    lbuild = library.add_parser("build", parents=[common], help="rebuild the library from the public datasets (needs torch; resumable)")
    lbuild.add_argument("--out", default=None, help="library directory (default: $MATXFER_LIBRARY or the user cache)")
    lbuild.add_argument("--data", default=None, help="shared data folder (default: ../shared/data or $MATXFER_DATA)")
    lbuild.add_argument("--presets", nargs="*", default=["magpie_full", "fraction", "xenonpy", "cromel"])
    lbuild.add_argument("--seeds", nargs="*", type=int, default=[0])
    lbuild.add_argument("--tasks", nargs="*", default=None, help="<dataset>/<property> keys or dataset names")
    lbuild.add_argument("--modalities", nargs="*", default=["composition", "structure"], choices=["composition", "structure"],
                        help="composition sources (an MLP per task, preset and seed) and/or structure sources (a CGCNN per task and seed)")
    lbuild.add_argument("--hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                        help="hidden widths of the composition MLPs of small sources (default 256 128)")
    lbuild.add_argument("--max-train-rows", type=int, default=None, metavar="N",
                        help="training rows per composition model of a small source, a seeded sample when a set is larger (default 20000)")
    lbuild.add_argument("--large-from-rows", type=int, default=None, metavar="N",
                        help="a source with at least N training rows is large (default 50000)")
    lbuild.add_argument("--hidden-large", type=int, nargs="+", default=None, metavar="WIDTH",
                        help="hidden widths of the composition MLPs of large sources (default 512 256 128)")
    lbuild.add_argument("--max-train-rows-large", type=int, default=None, metavar="N",
                        help="training rows per composition model of a large source (default 100000)")
    lbuild.set_defaults(func=cmd_library_build)
    pred = sub.add_parser("predict", parents=[common], help="predict with a library model: a column of formulas or "
                          "SMILES, or every structure of a structure file")
    pred.add_argument("model", help="library model name, e.g. mp_gap/band_gap/magpie_full/mlp")
    pred.add_argument("input", help=".csv, .csv.gz or .parquet file (composition and molecule models); a structure "
                      "file read by matxfer.structures.read_structures (structure models)")
    pred.add_argument("--column", default="formula")
    pred.add_argument("--out", required=True, help="output .parquet or .csv")
    pred.add_argument("--name", default=None, help="prediction column name (default: the property)")
    pred.add_argument("--library", default=None)
    pred.set_defaults(func=cmd_predict)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:
        return args.func(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MatxferError, ValueError, OSError, KeyError, ImportError, RuntimeError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    if isinstance(err, ImportError) and "pip install" not in text:
        root = (err.name or "").split(".")[0]
        text += f' (pip install "matxfer[{_EXTRAS.get(root, "all")}]")'
    return text


# the extra that provides each optional top-level module (pyproject.toml)
_EXTRAS = {"torch": "torch", "skops": "torch", "sklearn": "sklearn", "polars": "polars", "pyarrow": "polars",
           "pandas": "pandas", "pymatgen": "pymatgen", "ase": "ase", "rdkit": "rdkit", "dask": "dask",
           "distributed": "dask", "matplotlib": "demo", "threadpoolctl": "sklearn"}


if __name__ == "__main__":
    sys.exit(main())
