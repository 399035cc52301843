"""Composition featurization: formulas in, a float matrix with feature names out.

The heavy lifting (parsing, statistics, threading) happens in the Rust core with the GIL released.
This module only coerces inputs: lists/tuples/numpy arrays of str, pandas and polars Series
(polars and pyarrow columns are read from their Arrow buffers, no Python object per row),
pymatgen ``Composition`` objects and ``{element: amount}`` dicts.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import InvalidArgumentError

__all__ = [
    "Featurized",
    "Rejected",
    "featurize",
    "featurize_frame",
    "feature_names",
    "parse_formula",
    "element_table",
    "element_tables",
    "PRESETS",
]

#: Built-in presets (``cromel:<table>`` and ``stats:<table>`` take any embedded element table).
PRESETS = ("magpie", "magpie_full", "xenonpy", "cromel", "fraction", "ion_property", "ion_property_fast")

#: XenonPy's seven statistics, the default for user tables.
XENONPY_STATS = ("ave", "sum", "var", "gmean", "hmean", "max", "min")


class Rejected(NamedTuple):
    """A row that could not be featurized (``errors="nan"``)."""

    index: int  # type: ignore[assignment]  # the field deliberately shadows tuple.index
    input: str
    reason: str


@dataclass
class Featurized:
    """Result of :func:`featurize`. Unpacks as ``values, feature_names = featurize(...)``."""

    values: np.ndarray
    feature_names: list[str]
    rejected: list[Rejected] = field(default_factory=list)

    def __iter__(self):
        yield self.values
        yield self.feature_names

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]


@functools.lru_cache(maxsize=32)
def _preset(name: str, impute_nan: Optional[bool]) -> _core.Featurizer:
    return _core.Featurizer.preset(name, impute_nan)


def feature_names(preset: str = "magpie", impute_nan: Optional[bool] = None) -> list[str]:
    """Feature names of a preset, in output column order."""
    return _preset(preset, impute_nan).feature_names


def parse_formula(formula: str) -> dict[str, float]:
    """Parse one formula into ``{symbol: amount}`` (first-appearance order).

    >>> parse_formula("CuSO4·5H2O")
    {'Cu': 1.0, 'S': 1.0, 'O': 9.0, 'H': 10.0}
    """
    return _core.parse_formula(formula)


def element_tables() -> dict[str, str]:
    """Embedded element tables: ``{name: description}``."""
    return dict(_core.element_tables())


def element_table(name: str, as_frame: Optional[str] = None):
    """An embedded element table as ``(values[118, k], column_names)``, or as a DataFrame indexed
    by symbol with ``as_frame="pandas"`` / ``"polars"`` (a ``symbol`` column for polars)."""
    values, columns = _core.element_table(name)
    if as_frame is None:
        return values, columns
    symbols = _symbols()
    if as_frame == "pandas":
        import pandas as pd

        return pd.DataFrame(values, index=pd.Index(symbols, name="symbol"), columns=columns)
    if as_frame == "polars":
        import polars as pl

        return pl.DataFrame({"symbol": symbols, **{c: values[:, i] for i, c in enumerate(columns)}})
    raise InvalidArgumentError(f"as_frame must be None, 'pandas' or 'polars', got {as_frame!r}")


@functools.lru_cache(maxsize=1)
def _symbols() -> list[str]:
    return _core.element_table("onehot")[1]


def _table_featurizer(table: Any, columns: Optional[Sequence[str]], stats: Sequence[str], missing: str):
    """Build a featurizer from a user table: numpy ``118 x k`` (row z-1 = element z), or a pandas
    DataFrame indexed by symbol, or a polars DataFrame with a ``symbol`` column."""
    symbols = _symbols()
    if isinstance(table, np.ndarray):
        values = np.asarray(table, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != 118:
            raise InvalidArgumentError(f"a numpy element table must be 118 x k (row z-1 = element z), got {values.shape}")
        if columns is None:
            columns = [f"feature_{i}" for i in range(values.shape[1])]
        name = "custom"
    else:
        module = type(table).__module__.split(".")[0]
        if module == "polars":
            if "symbol" not in table.columns:
                raise InvalidArgumentError("a polars element table needs a 'symbol' column")
            row_symbols = table["symbol"].to_list()
            data_columns = [c for c in table.columns if c != "symbol"]
            data = table.select(data_columns).to_numpy().astype(np.float64)
        elif module == "pandas":
            row_symbols = [str(s) for s in table.index]
            data_columns = [str(c) for c in table.columns]
            data = table.to_numpy(dtype=np.float64)
        else:
            raise InvalidArgumentError(f"table must be a numpy array or a pandas/polars DataFrame, got {type(table).__name__}")
        position = {s: i for i, s in enumerate(symbols)}
        values = np.full((118, len(data_columns)), np.nan)
        for row, sym in enumerate(row_symbols):
            if sym not in position:
                raise InvalidArgumentError(f"element table row {row}: unknown element symbol {sym!r}")
            values[position[sym]] = data[row]
        columns = data_columns if columns is None else list(columns)
        name = "custom"
    if len(columns) != values.shape[1]:
        raise InvalidArgumentError(f"{len(columns)} column names for {values.shape[1]} columns")
    return _core.Featurizer.from_table(name, np.ascontiguousarray(values), list(columns), list(stats), missing)


def _composition_to_formula(obj: Any) -> Optional[str]:
    """pymatgen Composition / dict -> an exact formula string (repr keeps every bit of the amounts)."""
    if hasattr(obj, "get_el_amt_dict"):
        items = obj.get_el_amt_dict().items()
    elif isinstance(obj, dict):
        items = obj.items()
    else:
        return None
    return "".join(f"{el}{float(amt)!r}" for el, amt in items)


def _arrow_buffers(array: Any):
    """(data, offsets int64, validity bitmap or None, bit offset) of a pyarrow string array."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if pa.types.is_string_view(array.type) or pa.types.is_string(array.type):
        array = array.cast(pa.large_string())
    if not pa.types.is_large_string(array.type):
        raise InvalidArgumentError(f"expected a column of strings, got Arrow type {array.type}")
    validity_buf, offsets_buf, data_buf = array.buffers()
    n, off = len(array), array.offset
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[off : off + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    validity = None
    if validity_buf is not None and array.null_count > 0:
        validity = np.frombuffer(validity_buf, dtype=np.uint8)
    return data, offsets, validity, off


def formula_items(formulas: Any) -> list:
    """The rows of any formula input as a Python list: strings kept, pymatgen Compositions and
    ``{element: amount}`` dicts written as exact formulas, anything else (None, NaN, numbers) passed
    on for the core to reject by row. Used where no Arrow fast path applies."""
    module = type(formulas).__module__.split(".")[0]
    if isinstance(formulas, str):
        items: list = [formulas]
    elif module in ("pandas", "numpy"):
        if getattr(formulas, "ndim", 1) != 1:
            raise InvalidArgumentError(f"expected a 1-d column of formulas, got shape {formulas.shape}")
        items = formulas.tolist()
    elif module == "polars":
        if formulas.__class__.__name__ == "DataFrame":
            raise InvalidArgumentError("pass one column (a polars Series), not a DataFrame")
        items = formulas.to_list()
    elif module == "pyarrow":
        items = formulas.to_pylist()
    elif isinstance(formulas, list):
        items = formulas
    elif isinstance(formulas, Iterable):
        items = list(formulas)
    else:
        raise InvalidArgumentError(f"cannot read formulas from {type(formulas).__name__}")
    if not all(type(x) is str for x in items):
        items = [x if isinstance(x, str) else (_composition_to_formula(x) or x) for x in items]
    return items


def _run(featurizer, formulas: Any, errors: str, n_threads: Optional[int], float32: bool):
    module = type(formulas).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        if isinstance(formulas, pl.DataFrame):
            raise InvalidArgumentError("pass one column (a polars Series), not a DataFrame")
        if formulas.dtype != pl.String:
            raise InvalidArgumentError(f"polars column must have dtype String, got {formulas.dtype}")
        data, offsets, validity, bit_offset = _arrow_buffers(formulas.rechunk().to_arrow())
        return featurizer.featurize_arrow(data, offsets, validity, bit_offset, errors, n_threads, float32)
    if module == "pyarrow":
        data, offsets, validity, bit_offset = _arrow_buffers(formulas)
        return featurizer.featurize_arrow(data, offsets, validity, bit_offset, errors, n_threads, float32)
    return featurizer.featurize_list(formula_items(formulas), errors, n_threads, float32)


def featurize(
    formulas: Any,
    preset: str = "magpie",
    *,
    table: Any = None,
    columns: Optional[Sequence[str]] = None,
    stats: Sequence[str] = XENONPY_STATS,
    missing: str = "nan",
    impute_nan: Optional[bool] = None,
    errors: str = "raise",
    n_threads: Optional[int] = None,
    dtype: Union[type, np.dtype, str] = np.float64,
) -> Featurized:
    """Featurize chemical formulas.

    Parameters
    ----------
    formulas
        list/tuple/numpy array of str, pandas or polars Series, pyarrow array, or pymatgen
        ``Composition`` objects / ``{element: amount}`` dicts. Row count and order are preserved.
    preset
        ``"magpie"`` (matminer ElementProperty magpie, 132 features), ``"magpie_full"`` (Ward et al.
        2016 as matminer computes it, 149), ``"xenonpy"`` (7 statistics over the XenonPy-style
        table), ``"cromel"`` (mean/min/max of matscholar embeddings, 600; ``"cromel:<table>"`` for
        another embedding), ``"fraction"`` (118 element fractions), ``"stats:<table>"``,
        ``"ion_property"`` (matminer ``IonProperty()``, whose default ``fast=False`` decides
        "compound possible" with pymatgen's ``oxi_state_guesses``; 3 features; a formula with
        non-integer amounts is a bad row, as in matminer) and ``"ion_property_fast"``
        (``IonProperty(fast=True)``, one state per element).
    table, columns, stats, missing
        Instead of a preset, statistics (``stats``, default XenonPy's seven) over your own element
        table: a ``118 x k`` numpy array (row z-1 = element z; name the columns with ``columns``)
        or a pandas DataFrame indexed by symbol / polars DataFrame with a ``symbol`` column.
        ``missing``: ``"nan"`` (NaN propagates), ``"impute"`` (column mean), ``"reject"`` (the row
        is an error).
    impute_nan
        Override the preset's handling of missing element data (``None``: the preset's default;
        magpie presets impute the column mean as matminer does).
    errors
        ``"raise"``: the first bad row raises :class:`~matxfer.exceptions.FormulaError` /
        :class:`~matxfer.exceptions.FeaturizationError` naming the row index and reason.
        ``"nan"``: bad rows become NaN and are listed in ``result.rejected``.
    n_threads
        Worker threads (default: ``MATXFER_NUM_THREADS`` or all cores). Output is bitwise identical
        for every thread count.
    dtype
        ``float64`` (default) or ``float32``.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InvalidArgumentError(f"dtype must be float64 or float32, got {dt}")
    if errors not in ("raise", "nan"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'nan', got {errors!r}")
    if n_threads is not None and (not isinstance(n_threads, (int, np.integer)) or n_threads < 1):
        raise InvalidArgumentError(f"n_threads must be a positive integer, got {n_threads!r}")
    if table is not None:
        featurizer = _table_featurizer(table, columns, tuple(stats), missing)
    else:
        featurizer = _preset(preset, impute_nan)
    values, rejected = _run(featurizer, formulas, errors, n_threads, dt == np.float32)
    return Featurized(values, featurizer.feature_names, [Rejected(*r) for r in rejected])


def featurize_frame(
    formulas: Any,
    preset: str = "magpie",
    *,
    backend: str = "polars",
    formula_column: Optional[str] = "formula",
    **kwargs: Any,
):
    """Like :func:`featurize` but returns a polars (default) or pandas DataFrame with one column per
    feature, preceded by the input formulas in ``formula_column`` (``None`` to omit it)."""
    result = featurize(formulas, preset, **kwargs)
    if backend == "polars":
        import polars as pl

        frame = pl.from_numpy(result.values, schema=result.feature_names, orient="row")
        if formula_column is not None:
            frame = frame.insert_column(0, pl.Series(formula_column, _as_str_list(formulas)))
        return frame
    if backend == "pandas":
        import pandas as pd

        frame = pd.DataFrame(result.values, columns=result.feature_names)
        if formula_column is not None:
            frame.insert(0, formula_column, _as_str_list(formulas))
        return frame
    raise InvalidArgumentError(f"backend must be 'polars' or 'pandas', got {backend!r}")


def _as_str_list(formulas: Any) -> list:
    module = type(formulas).__module__.split(".")[0]
    if module in ("polars", "pandas", "pyarrow"):
        return [None if x is None else str(x) for x in formulas.to_list()] if module != "pandas" else [str(x) for x in formulas.tolist()]
    if isinstance(formulas, str):
        return [formulas]
    return [x if isinstance(x, str) else (_composition_to_formula(x) or str(x)) for x in formulas]
