"""Out-of-core featurization: read a file in chunks, featurize each chunk in the core, write Parquet
row groups as they finish. Peak memory follows ``chunk_size``, not the size of the file.

Inputs: tables of formulas (``.csv``, ``.tsv``, ``.csv.gz``, ``.parquet``, ``.jsonl``/``.ndjson``,
optionally gzipped) and structures (extended XYZ, JSON lines with ``lattice``/``species``/
``frac_coords``, a CIF file or a folder of CIF files). Every input row gives exactly one output row,
in input order; a row that cannot be featurized keeps its place with null features and is listed
(row, input, reason) in the error report, unless ``drop_invalid=True``.

A file that is cut short or malformed (a CSV row with the wrong number of fields, a JSON line that
does not parse, an XYZ frame with missing atom lines) stops the run with :class:`InputFileError`
naming the line; the partially written output is removed.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, TextIO, Tuple

import numpy as np

from matxfer.exceptions import MatxferError

if TYPE_CHECKING:
    import _csv

    import pyarrow.parquet as pq

__all__ = [
    "InputFileError",
    "Progress",
    "StreamSummary",
    "featurize_file",
    "featurize_structures_file",
    "iter_table_chunks",
    "iter_structure_chunks",
    "check_writable",
    "table_format",
    "structure_format",
]

DEFAULT_CHUNK_SIZE = 200_000
DEFAULT_STRUCTURE_CHUNK = 5_000


class InputFileError(MatxferError, ValueError):
    """An input file is malformed or cut short; the message names the file and the line."""


# --------------------------------------------------------------------------------------- progress
class Progress:
    """One self-rewriting line on stderr: rows done, rows/s and, when the total is known, ETA.

    Off when stderr is not a terminal (logs, pipes, CI) or when ``enabled=False`` (``--quiet``).
    ``fraction`` lets readers that know how far through the file they are (bytes read) give an ETA
    without counting the rows first.
    """

    def __init__(self, label: str, total: Optional[int] = None, enabled: Optional[bool] = None, unit: str = "rows"):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.label, self.total, self.unit = label, total, unit
        self.start = time.perf_counter()
        self.done = 0
        self._last = 0.0

    def update(self, n: int, fraction: Optional[float] = None) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.2:
            return
        self._last = now
        self._draw(now, fraction)

    def _draw(self, now: float, fraction: Optional[float]) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if fraction is None and self.total:
            fraction = self.done / self.total
        text = f"\r{self.label}: {self.done:,} {self.unit} | {rate:,.0f} {self.unit}/s"
        if fraction is not None and 0 < fraction < 1:
            text += f" | {fraction * 100:4.1f}% | ETA {_clock(elapsed * (1 - fraction) / fraction)}"
        sys.stderr.write(text.ljust(78))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter(), None)
            sys.stderr.write("\n")
            sys.stderr.flush()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------- outputs
def check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be created (missing permission, a file where a
    folder should be, a folder where the file should be)."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder; give an output file name")
    parent = path.parent
    # The nearest existing ancestor must be a writable folder (the rest is created).
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputFileError(f"{path}: cannot create the output: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputFileError(f"{path}: cannot write the output: no write permission in {probe}")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputFileError(f"{path}: cannot overwrite the output: no write permission")


class _ErrorReport:
    """``row,input,reason`` CSV, written as rejections arrive (opened on the first one)."""

    def __init__(self, path: Optional[Path]):
        self.path = path
        self._fh: Optional[TextIO] = None
        self._writer: Optional[_csv.Writer] = None
        self.count = 0
        self.first: List[Tuple[int, str, str]] = []

    def add(self, row: int, text: str, reason: str) -> None:
        self.count += 1
        if len(self.first) < 10:
            self.first.append((row, text, reason))
        if self.path is None:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["row", "input", "reason"])
        self._writer.writerow([row, text, reason])

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        elif self.path is not None and self.path.exists():
            self.path.unlink()  # a stale report from an earlier run would list rows that are fine now


# --------------------------------------------------------------------------------------- tables
def table_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".parquet", "parquet"), (".pq", "parquet"),
                         (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(suffix):
            return kind
    raise InputFileError(f"{path}: unsupported file type; use .csv, .tsv, .parquet or .jsonl (optionally .gz)")


def _open_bytes(path: Path):
    """A pyarrow input stream and the raw file under it (its position gives progress through the file)."""
    import pyarrow as pa

    raw = pa.OSFile(str(path), "rb")
    if path.name.lower().endswith(".gz"):
        return pa.CompressedInputStream(raw, "gzip"), raw
    return raw, raw


def _csv_header(path: Path, delimiter: str) -> List[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        try:
            return next(csv.reader(fh, delimiter=delimiter))
        except StopIteration:
            raise InputFileError(f"{path}: empty file (no header line)") from None


def _locate_csv_problem(path: Path, delimiter: str, n_columns: int) -> str:
    """The line of the first CSV row whose field count differs from the header's (pyarrow's message
    quotes the row but not its line)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        start = 1
        try:
            for row in reader:
                if row and len(row) != n_columns:
                    return f"line {start}: expected {n_columns} fields, found {len(row)} (file cut short or malformed?)"
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"line {start}: {exc} (file cut short or malformed?)"
    return "malformed CSV"


def iter_table_chunks(
    path: Path, columns: Sequence[str], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[Tuple[Any, Optional[float]]]:
    """Yield ``(pyarrow.Table, fraction of the file read)`` chunks of at most ``chunk_size`` rows with
    the given columns. CSV/TSV columns are read as text, so formulas such as ``NaN`` (sodium nitride)
    and empty cells stay strings."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    kind = table_format(path)
    size = max(path.stat().st_size, 1)
    if kind in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        delimiter = "\t" if kind == "tsv" else ","
        header = _csv_header(path, delimiter)
        _require_columns(path, header, columns)
        stream, raw = _open_bytes(path)
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in header},
                    include_columns=list(columns),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:  # the first block is parsed on open
            where = _locate_csv_problem(path, delimiter, len(header))
            raise InputFileError(f"{path}: {where} [{str(exc).splitlines()[0]}]") from None
        batches = _guard_csv(reader, path, delimiter, len(header))
        yield from _rechunk(batches, chunk_size, lambda: raw.tell() / size)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(str(path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
        _require_columns(path, parquet.schema_arrow.names, columns)
        total = max(parquet.metadata.num_rows, 1)
        done = [0]

        def batches():
            for b in parquet.iter_batches(batch_size=chunk_size, columns=list(columns)):
                done[0] += b.num_rows
                yield b

        yield from _rechunk(batches(), chunk_size, lambda: done[0] / total)
    else:
        yield from _jsonl_chunks(path, columns, chunk_size)


def _require_columns(path: Path, available: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputFileError(f"{path}: no column {missing[0]!r}; columns are {list(available)}")


def _guard_csv(reader, path: Path, delimiter: str, n_columns: int):
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            where = _locate_csv_problem(path, delimiter, n_columns)
            raise InputFileError(f"{path}: {where} [{str(exc).splitlines()[0]}]") from None
        yield batch


def _rechunk(batches, chunk_size: int, fraction: Callable[[], float]):
    import pyarrow as pa

    pending, n_pending = [], 0
    for batch in batches:
        pending.append(batch)
        n_pending += batch.num_rows
        while n_pending >= chunk_size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_size), fraction()
            rest = table.slice(chunk_size)
            pending, n_pending = rest.to_batches(), rest.num_rows
    if n_pending:
        yield pa.Table.from_batches(pending), 1.0


def _jsonl_chunks(path: Path, columns: Sequence[str], chunk_size: int):
    import pyarrow as pa

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    size = max(path.stat().st_size, 1)
    with open(path, "rb") as raw, (gzip.open(raw, "rb") if opener is gzip.open else contextlib.nullcontext(raw)) as fh:
        line_no = 0
        while True:
            rows, first_line = [], line_no + 1
            for line in fh:
                line_no += 1
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputFileError(f"{path}: line {line_no}: not valid JSON ({exc.msg}; file cut short or malformed?)") from None
                if not isinstance(record, dict):
                    raise InputFileError(f"{path}: line {line_no}: expected a JSON object per line")
                rows.append(record)
                if len(rows) >= chunk_size:
                    break
            if not rows:
                return
            for name in columns:
                if name not in rows[0]:
                    raise InputFileError(f"{path}: line {first_line}: no field {name!r}; fields are {list(rows[0])}")
            data = {}
            for name in columns:
                values = [r.get(name) for r in rows]
                data[name] = pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values], pa.string())
            yield pa.table(data), raw.tell() / size
            if len(rows) < chunk_size:
                return


# --------------------------------------------------------------------------------------- summary
@dataclass
class StreamSummary:
    """What a streaming run did."""

    input: str
    output: str
    n_rows: int = 0
    n_rejected: int = 0
    n_written: int = 0
    n_features: int = 0
    seconds: float = 0.0
    error_report: Optional[str] = None
    first_rejected: List[Tuple[int, str, str]] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.n_rows / max(self.seconds, 1e-9)

    def lines(self) -> List[str]:
        out = [
            f"{'input':<16}{self.input}",
            f"{'rows':<16}{self.n_rows:,}",
            f"{'featurized':<16}{self.n_rows - self.n_rejected:,}",
            f"{'rejected':<16}{self.n_rejected:,}" + (f" (listed in {self.error_report})" if self.error_report and self.n_rejected else ""),
            f"{'output':<16}{self.output} ({self.n_written:,} rows"
            + (f" x {self.n_features} features)" if self.n_features else ")"),
            f"{'time':<16}{self.seconds:.2f} s ({self.rows_per_second:,.0f} rows/s)",
        ]
        for row, text, reason in self.first_rejected[:5]:
            out.append(f"  rejected row {row}: {text!r}: {reason}")
        if self.n_rejected > 5:
            out.append(f"  ... {self.n_rejected - 5:,} more")
        return out


# --------------------------------------------------------------------------------------- writers
class _ParquetSink:
    """Writes row groups to ``<out>.partial`` and renames it to ``out`` on success, so a failed or
    interrupted run never leaves a file that looks complete."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.tmp = self.out.with_name(self.out.name + ".partial")
        self.writer: Optional[pq.ParquetWriter] = None

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(str(self.tmp), table.schema, compression="zstd")
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def finish(self, empty_schema=None) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(empty_schema.empty_table(), str(self.tmp))
        else:
            self.writer.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - the original error is the one worth reporting
                pass
        if self.tmp.exists():
            self.tmp.unlink()


def _feature_table(values: np.ndarray, names: Sequence[str], invalid: Optional[np.ndarray]):
    """Feature columns as Arrow arrays; rejected rows are null (not NaN: some presets give NaN for
    missing element data, which is a value, not a failure)."""
    import pyarrow as pa

    columns = np.ascontiguousarray(values.T)  # one blocked transpose instead of a strided copy per column
    arrays = [pa.array(column, mask=invalid) if invalid is not None else pa.array(column) for column in columns]
    return pa.Table.from_arrays(arrays, names=list(names))


class _FeatureRun:
    """The parts every streaming featurization shares: the Parquet sink, the error report, the
    progress bar and the offset of the current chunk. As a context manager it removes a partial
    output on any exception and closes the report and the bar; the summary is filled on exit."""

    def __init__(self, input: Path, out: Path, report_path: Optional[Path], n_features: int, progress, unit: str):
        self.summary = StreamSummary(str(input), str(out), n_features=n_features,
                                     error_report=None if report_path is None else str(report_path))
        self.report = _ErrorReport(report_path)
        self.sink = _ParquetSink(out)
        self.bar = Progress(f"featurize {input.name}", enabled=progress, unit=unit)
        self.base = 0  # input rows before the current chunk

    def write(self, table, n_rows: int, fraction: Optional[float] = None) -> None:
        """Write one chunk's output table that came from ``n_rows`` input rows."""
        self.sink.write(table)
        self.summary.n_written += table.num_rows
        self.base += n_rows
        self.bar.update(n_rows, fraction)

    def __enter__(self) -> _FeatureRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self.sink.abort()
        finally:
            self.report.close()
            self.bar.close()
        summary = self.summary
        summary.n_rows, summary.n_rejected, summary.seconds = self.base, self.report.count, self.bar.seconds
        summary.first_rejected = self.report.first


def _assemble(kept, features, invalid: Optional[np.ndarray], drop_invalid: bool):
    import pyarrow as pa

    table = kept
    for name, column in zip(features.column_names, features.columns):
        table = table.append_column(name, column)
    if drop_invalid and invalid is not None:
        table = table.filter(pa.array(~invalid))
    return table


def featurize_file(
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    column: str = "formula",
    preset: str = "magpie",
    keep: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    drop_invalid: bool = False,
    error_report: str | os.PathLike | None = "auto",
    dtype: str = "float64",
    impute_nan: Optional[bool] = None,
    n_threads: Optional[int] = None,
    progress: Optional[bool] = None,
) -> StreamSummary:
    """Featurize the formulas in one column of a CSV/TSV/Parquet/JSON-lines file into a Parquet file.

    The output holds ``column``, the ``keep`` columns and the features, one row per input row in
    input order (``drop_invalid=True`` leaves rejected rows out). Rejected rows are written to
    ``error_report`` (default ``<out>.errors.csv``; ``None`` for none). Memory is bounded by
    ``chunk_size`` rows.
    """
    import pyarrow as pa

    import matxfer

    input, out = Path(input), Path(out)
    check_writable(out)
    report_path = _report_path(out, error_report)
    names = matxfer.feature_names(preset, impute_nan)
    keep = [c for c in keep if c != column]
    with _FeatureRun(input, out, report_path, len(names), progress, unit="rows") as run:
        for chunk, fraction in iter_table_chunks(input, [column, *keep], chunk_size):
            result = matxfer.featurize(chunk.column(column), preset, errors="nan", dtype=dtype, impute_nan=impute_nan, n_threads=n_threads)
            invalid = None
            if result.rejected:
                invalid = np.zeros(chunk.num_rows, dtype=bool)
                for index, text, reason in result.rejected:
                    invalid[index] = True
                    run.report.add(run.base + index, text, reason)
            table = _assemble(chunk.select([column, *keep]), _feature_table(result.values, names, invalid), invalid, drop_invalid)
            run.write(table, chunk.num_rows, fraction)
        schema = pa.schema([(column, pa.string()), *[(k, pa.string()) for k in keep], *[(n, pa.from_numpy_dtype(np.dtype(dtype))) for n in names]])
        run.sink.finish(schema)
    return run.summary


def _report_path(out: Path, error_report) -> Optional[Path]:
    if error_report is None:
        return None
    if error_report == "auto":
        return out.with_name(out.name + ".errors.csv")
    return Path(error_report)


# --------------------------------------------------------------------------------------- structures
def structure_format(path: Path) -> str:
    if path.is_dir():
        return "cif-folder"
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, kind in ((".xyz", "xyz"), (".extxyz", "xyz"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".cif", "cif")):
        if name.endswith(suffix):
            return kind
    raise InputFileError(f"{path}: unsupported structure input; use .extxyz/.xyz, .jsonl, .cif or a folder of .cif files")


@dataclass
class _Unit:
    """One structure's source text (a frame, a JSON line, a CIF file) and where it came from."""

    text: str
    label: str


def _read_text(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read().decode("utf-8", errors="replace")


def _xyz_units(path: Path) -> Iterator[_Unit]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        line_no = 0
        while True:
            header = fh.readline()
            line_no += 1
            if not header:
                return
            if not header.strip():
                continue
            start = line_no
            try:
                n_atoms = int(header.split()[0])
            except ValueError:
                raise InputFileError(f"{path}: line {line_no}: expected the number of atoms of a frame, found {header.strip()[:60]!r}") from None
            lines = [header]
            for _ in range(n_atoms + 1):
                text = fh.readline()
                line_no += 1
                if not text:
                    raise InputFileError(
                        f"{path}: line {line_no}: the frame starting at line {start} declares {n_atoms} atoms but the file ends "
                        "(file cut short?)"
                    )
                lines.append(text)
            yield _Unit("".join(lines), f"{path.name}:{start}")


def _jsonl_units(path: Path) -> Iterator[_Unit]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                # The last line of a file that was cut short: complete JSON lines end with a newline
                # in every writer we know, and a cut line usually does not parse either.
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputFileError(f"{path}: line {line_no}: not valid JSON ({exc.msg}; file cut short?)") from None
            yield _Unit(line, f"{path.name}:{line_no}")


def iter_structure_units(path: Path) -> Iterator[_Unit]:
    kind = structure_format(path)
    if kind == "xyz":
        yield from _xyz_units(path)
    elif kind == "jsonl":
        yield from _jsonl_units(path)
    elif kind == "cif":
        yield _Unit(_read_text(path), path.name)
    else:
        files = sorted(p for p in path.iterdir() if p.name.lower().endswith((".cif", ".cif.gz", ".mcif")))
        if not files:
            raise InputFileError(f"{path}: no .cif files in the folder")
        for f in files:
            yield _Unit(_read_text(f), f.name)


def _parse_units(units: List[_Unit], kind: str, occupancy_policy: str):
    """(StructureBatch of the units that parse, their positions in ``units``, [(position, reason)])."""
    from matxfer.structures import StructureBatch

    fmt = {"xyz": "xyz", "jsonl": "jsonl", "cif": "cif", "cif-folder": "cif"}[kind]
    try:
        batch = StructureBatch.from_string("".join(u.text if u.text.endswith("\n") else u.text + "\n" for u in units), fmt,
                                           name=units[0].label, occupancy_policy=occupancy_policy)
        if len(batch) == len(units):
            return batch, list(range(len(units))), []
    except ValueError:
        pass
    # Slow path (only for a chunk with a bad structure, or CIF files with several blocks): one at a time.
    parts, good, bad = [], [], []
    for k, unit in enumerate(units):
        try:
            b = StructureBatch.from_string(unit.text, fmt, name=unit.label, occupancy_policy=occupancy_policy)
            if len(b) == 0:
                raise ValueError("no structure found")
            if len(b) > 1:
                b = b.select([0])
            parts.append(b)
            good.append(k)
        except ValueError as exc:
            bad.append((k, _one_line(exc)))
    return _concat(parts), good, bad


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _concat(batches):
    from matxfer.structures import StructureBatch

    if not batches:
        return StructureBatch(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 3), bool), [0], [])
    ptr = [0]
    for b in batches:
        ptr.extend((np.asarray(b.ptr[1:]) + ptr[-1]).tolist())
    return StructureBatch(
        np.concatenate([b.lattices for b in batches]),
        np.concatenate([b.frac_coords for b in batches]),
        np.concatenate([b.numbers for b in batches]),
        np.concatenate([b.pbc for b in batches]),
        ptr,
        [i for b in batches for i in b.ids],
    )


def iter_structure_chunks(path, chunk_size: int = DEFAULT_STRUCTURE_CHUNK, occupancy_policy: str = "error"):
    """Yield ``(units, batch, good_positions, [(position, reason)])`` for chunks of ``chunk_size``
    structures; ``batch`` holds the structures that parsed, in order."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")
    kind = structure_format(path)
    units: List[_Unit] = []
    for unit in iter_structure_units(path):
        units.append(unit)
        if len(units) >= chunk_size:
            yield (units, *_parse_units(units, kind, occupancy_policy))
            units = []
    if units:
        yield (units, *_parse_units(units, kind, occupancy_policy))


def structure_formulas(batch) -> List[str]:
    """Formula strings (element counts) of each structure in a batch, for composition descriptors."""
    from matxfer import _core  # noqa: F401  (keeps the import order of the package)

    symbols = _symbols()
    out = []
    for s in range(len(batch)):
        z = batch.numbers[batch.ptr[s] : batch.ptr[s + 1]]
        values, counts = np.unique(z, return_counts=True)
        out.append("".join(f"{symbols[v - 1]}{c}" for v, c in zip(values.tolist(), counts.tolist())))
    return out


def _symbols() -> List[str]:
    from matxfer.featurize import _symbols as symbols

    return symbols()


DENSITY_NAMES = ["density", "vpa", "packing fraction"]


def featurize_structures_file(
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    preset: str = "magpie",
    chunk_size: int = DEFAULT_STRUCTURE_CHUNK,
    drop_invalid: bool = False,
    error_report: str | os.PathLike | None = "auto",
    dtype: str = "float64",
    occupancy_policy: str = "error",
    n_threads: Optional[int] = None,
    progress: Optional[bool] = None,
) -> StreamSummary:
    """Featurize structures (extxyz, JSON lines, CIF file or folder) to Parquet: ``id`` (file:line or
    file name), ``formula``, then either the composition preset of each structure's composition and
    matminer's ``DensityFeatures`` (density g/cm^3, volume per atom A^3, packing fraction), or, for a
    structure preset (``"ward2017"``, see :mod:`matxfer.structure_presets`), that preset's features."""
    import pyarrow as pa

    import matxfer
    from matxfer.structures import density_features

    input, out = Path(input), Path(out)
    check_writable(out)
    report_path = _report_path(out, error_report)
    from matxfer.structure_presets import STRUCTURE_PRESETS, featurize_structures, structure_feature_names

    structure_preset = preset in STRUCTURE_PRESETS
    names = structure_feature_names(preset) if structure_preset else [*matxfer.feature_names(preset), *DENSITY_NAMES]
    np_dtype = np.dtype(dtype)
    with _FeatureRun(input, out, report_path, len(names), progress, unit="structures") as run:
        for units, batch, good, bad in iter_structure_chunks(input, chunk_size, occupancy_policy):
            n = len(units)
            values = np.full((n, len(names)), np.nan, dtype=np_dtype)
            formulas: List[Optional[str]] = [None] * n
            invalid = np.zeros(n, dtype=bool)
            for k, _reason in bad:
                invalid[k] = True
            if len(good):
                good_formulas = structure_formulas(batch)
                if structure_preset:
                    comp = featurize_structures(batch, preset, errors="nan", dtype=dtype, n_threads=n_threads)
                    values[good] = comp.values
                else:
                    comp = matxfer.featurize(good_formulas, preset, errors="nan", dtype=dtype, n_threads=n_threads)
                    dens = density_features(batch, n_threads=n_threads)
                    values[good] = np.concatenate([comp.values, dens.astype(np_dtype)], axis=1)
                for k, f in zip(good, good_formulas):
                    formulas[k] = f
                for index, _text, reason in comp.rejected:
                    invalid[good[index]] = True
                    bad.append((good[index], reason))
            for k, reason in sorted(bad):
                run.report.add(run.base + k, units[k].label, reason)
            kept = pa.table({"id": pa.array([u.label for u in units], pa.string()), "formula": pa.array(formulas, pa.string())})
            table = _assemble(kept, _feature_table(values, names, invalid if invalid.any() else None), invalid, drop_invalid)
            run.write(table, n)
        schema = pa.schema([("id", pa.string()), ("formula", pa.string()), *[(n, pa.from_numpy_dtype(np_dtype)) for n in names]])
        run.sink.finish(schema)
    return run.summary
