"""Featurize Dask collections partition by partition (``pip install "matxfer[dask]"``).

>>> import dask.dataframe as dd
>>> import matxfer.dask
>>> ddf = dd.read_csv("candidates-*.csv", dtype={"formula": str}, keep_default_na=False)
>>> features = matxfer.dask.featurize(ddf["formula"], "magpie")      # lazy, one task per partition
>>> features.to_parquet("features/")                                   # or .compute()

Each partition is featurized by the Rust core in the worker that holds it; the result is a Dask
DataFrame with the preset's feature names as columns, float64 (or float32) dtype, and the index of
the input partitions, so it can be joined back to ``ddf``. Rejected formulas become NaN rows
(``errors="nan"``, the default) or fail the task (``errors="raise"``).

Threads: every worker process runs its own rayon pool. With several worker processes on one
machine, give each ``n_threads`` = cores / processes (or set ``MATXFER_NUM_THREADS`` in the
workers' environment) so the pools do not oversubscribe the cores.

On a cluster, connect a ``distributed.Client`` to the scheduler before computing
(``Client("tcp://scheduler:8786")``, or a ``dask_jobqueue``/``dask_kubernetes`` cluster object);
matxfer must be installed in the workers' environment, nothing else is needed.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np

__all__ = ["featurize", "featurize_structures"]


def _featurize_partition(series, preset: str, errors: str, dtype: str, impute_nan: Optional[bool], n_threads: Optional[int]):
    import pandas as pd

    import matxfer

    result = matxfer.featurize(series, preset, errors=errors, dtype=dtype, impute_nan=impute_nan, n_threads=n_threads)
    return pd.DataFrame(result.values, columns=result.feature_names, index=series.index)


def _meta(names, dtype: str):
    import pandas as pd

    return pd.DataFrame({name: np.zeros(0, dtype=dtype) for name in names})


def featurize(
    formulas: Any,
    preset: str = "magpie",
    *,
    errors: str = "nan",
    dtype: str = "float64",
    impute_nan: Optional[bool] = None,
    n_threads: Optional[int] = None,
):
    """Featurize a Dask Series of formula strings; returns a lazy Dask DataFrame (one task per
    partition) with the feature names of ``preset`` as columns."""
    import matxfer

    names = matxfer.feature_names(preset, impute_nan)
    if errors not in ("raise", "nan"):
        raise ValueError(f"errors must be 'raise' or 'nan', got {errors!r}")
    return formulas.map_partitions(
        _featurize_partition, preset, errors, dtype, impute_nan, n_threads, meta=_meta(names, dtype), enforce_metadata=False
    )


def _structures_partition(frame, preset: str, dtype: str, n_threads: Optional[int]):
    import pandas as pd

    import matxfer
    from matxfer.streaming import DENSITY_NAMES, structure_formulas
    from matxfer.structures import StructureBatch, density_features

    def value(v):
        if isinstance(v, str):  # JSON text, or list columns that Dask's string conversion turned into text
            try:
                return json.loads(v)
            except ValueError:
                raise ValueError(
                    "structure columns arrived as text; build the frame with "
                    "dask.config.set({'dataframe.convert-string': False}) so lists stay lists"
                ) from None
        return v

    items = [
        {"lattice": value(lat), "species": value(sp), "frac_coords": value(fc)}
        for lat, sp, fc in zip(frame["lattice"], frame["species"], frame["frac_coords"])
    ]
    batch = StructureBatch.from_structures(items)
    comp = matxfer.featurize(structure_formulas(batch), preset, errors="nan", dtype=dtype, n_threads=n_threads)
    values = np.concatenate([comp.values, density_features(batch, n_threads=n_threads).astype(dtype)], axis=1)
    return pd.DataFrame(values, columns=[*comp.feature_names, *DENSITY_NAMES], index=frame.index)


def featurize_structures(frame: Any, preset: str = "magpie", *, dtype: str = "float64", n_threads: Optional[int] = None):
    """Featurize a Dask DataFrame of structures (columns ``lattice`` 3x3, ``species``,
    ``frac_coords``, e.g. from ``dd.read_json(..., lines=True)``): the composition preset of each
    structure plus matminer's DensityFeatures, as ``matxfer featurize --structures`` writes them."""
    import matxfer
    from matxfer.streaming import DENSITY_NAMES

    names = [*matxfer.feature_names(preset), *DENSITY_NAMES]
    return frame.map_partitions(_structures_partition, preset, dtype, n_threads, meta=_meta(names, dtype), enforce_metadata=False)
