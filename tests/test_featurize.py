"""The featurize API: inputs, outputs, errors, determinism, presets, user tables, integrations."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import matxfer
from matxfer.exceptions import FeaturizationError, FormulaError, InvalidArgumentError

FORMULAS = ["Fe2O3", "NaCl", "CuSO4·5H2O", "NaN", "Ba0.5Sr0.5TiO3"]


@pytest.mark.parametrize(
    "preset, n_features",
    [("magpie", 132), ("magpie_full", 149), ("fraction", 118), ("cromel", 600), ("xenonpy", 7 * 58)],
)
def test_preset_shapes_and_names(preset, n_features):
    result = matxfer.featurize(FORMULAS, preset)
    assert result.values.shape == (len(FORMULAS), n_features)
    assert result.values.dtype == np.float64
    assert len(result.feature_names) == n_features == len(set(result.feature_names))
    assert result.feature_names == matxfer.feature_names(preset)
    x, names = result  # unpacks as (values, names)
    assert x is result.values


def test_fraction_and_cromel_values():
    x, names = matxfer.featurize(["Fe2O3"], "fraction")
    assert x[0, names.index("Fe")] == pytest.approx(0.4) and x[0, names.index("O")] == pytest.approx(0.6)
    assert x.sum() == pytest.approx(1.0)
    table, columns = matxfer.element_table("matscholar")
    x, names = matxfer.featurize(["Fe2O3"], "cromel")
    expected_mean = 0.4 * table[25] + 0.6 * table[7]
    np.testing.assert_allclose(x[0, :200], expected_mean, rtol=1e-12)
    np.testing.assert_array_equal(x[0, 200:400], np.minimum(table[25], table[7]))
    np.testing.assert_array_equal(x[0, 400:], np.maximum(table[25], table[7]))
    assert names[0] == "ave:matscholar_0" and names[200] == "min:matscholar_0"


def test_xenonpy_statistics_definitions():
    table, columns = matxfer.element_table("xenonpy")
    x, names = matxfer.featurize(["Fe2O3"], "xenonpy")
    k = columns.index("atomic_weight")
    fe, o = table[25, k], table[7, k]
    row = dict(zip(names, x[0]))
    assert row["ave:atomic_weight"] == pytest.approx(0.4 * fe + 0.6 * o)
    assert row["sum:atomic_weight"] == pytest.approx(2 * fe + 3 * o)
    mean = 0.4 * fe + 0.6 * o
    assert row["var:atomic_weight"] == pytest.approx(0.4 * (fe - mean) ** 2 + 0.6 * (o - mean) ** 2)
    assert row["gmean:atomic_weight"] == pytest.approx(fe**0.4 * o**0.6)
    assert row["hmean:atomic_weight"] == pytest.approx(1 / (0.4 / fe + 0.6 / o))
    assert row["max:atomic_weight"] == fe and row["min:atomic_weight"] == o


def test_inputs_agree(tmp_path):
    from pymatgen.core import Composition

    reference = matxfer.featurize(FORMULAS).values
    inputs = [
        tuple(FORMULAS),
        np.array(FORMULAS),
        np.array(FORMULAS, dtype=object),
        pd.Series(FORMULAS),
        pd.Series(FORMULAS, dtype="string"),
        pl.Series(FORMULAS),
        pa.array(FORMULAS),
        pa.chunked_array([FORMULAS[:2], FORMULAS[2:]]),
        pa.array(FORMULAS, type=pa.large_string()),
        (f for f in FORMULAS),
    ]
    for data in inputs:
        np.testing.assert_array_equal(matxfer.featurize(data).values, reference, err_msg=type(data).__name__)
    # pymatgen Compositions and dicts are passed with exact amounts.
    comps = [Composition(f) for f in ["Fe2O3", "NaCl", "Ba0.5Sr0.5TiO3"]]
    np.testing.assert_array_equal(matxfer.featurize(comps).values, matxfer.featurize(["Fe2O3", "NaCl", "Ba0.5Sr0.5TiO3"]).values)
    np.testing.assert_array_equal(matxfer.featurize([{"Fe": 2, "O": 3}]).values, reference[:1])


def test_polars_sliced_column_with_nulls():
    col = pl.Series(["H2O", None, "Fe2O3", "NaCl", None, "KCl"])[1:]
    result = matxfer.featurize(col, errors="nan")
    assert result.values.shape[0] == 5
    assert [r.index for r in result.rejected] == [0, 3]
    assert all(r.reason.startswith("null") for r in result.rejected)
    np.testing.assert_array_equal(result.values[1], matxfer.featurize(["Fe2O3"]).values[0])
    with pytest.raises(FeaturizationError, match="row 0"):
        matxfer.featurize(col)


def test_polars_string_view_chunks(mp_gap_formulas):
    a = pl.Series(mp_gap_formulas[:3000])
    b = pl.Series(mp_gap_formulas[3000:6000])
    col = pl.concat([a, b], rechunk=False)
    assert col.n_chunks() == 2
    np.testing.assert_array_equal(matxfer.featurize(col).values, matxfer.featurize(mp_gap_formulas[:6000]).values)


def test_errors_raise_names_row_and_reason():
    with pytest.raises(FormulaError) as info:
        matxfer.featurize(["NaCl", "Fe2O3", "Fe2Xx3", "(Na"])
    err = info.value
    assert err.index == 2 and err.input == "Fe2Xx3" and err.reason == "unknown_element"
    assert str(err).startswith('row 2: cannot parse formula "Fe2Xx3"')
    assert isinstance(err, ValueError)
    with pytest.raises(FeaturizationError, match=r"row 1: .*not a string \(got int\)"):
        matxfer.featurize(["NaCl", 42])
    with pytest.raises(FeaturizationError, match=r"row 0: .*missing value"):
        matxfer.featurize(pd.Series([None, "NaCl"], dtype=object))


@pytest.mark.parametrize(
    "bad, code",
    [("", "empty"), ("Xx", "unknown_element"), ("(Na", "unbalanced_bracket"), ("Na0", "non_positive_amount"),
     ("Na1e999", "non_finite_amount"), ("Na1.2.3", "invalid_number"), ("Na!", "unexpected_character")],
)
def test_errors_nan_keeps_every_row(bad, code):
    rows = ["NaCl", bad, "KCl"]
    result = matxfer.featurize(rows, errors="nan")
    assert result.values.shape == (3, 132)
    assert np.isnan(result.values[1]).all()
    assert np.isfinite(result.values[[0, 2]]).all()
    assert len(result.rejected) == 1
    index, text, reason = result.rejected[0]
    assert (index, text) == (1, bad) and reason.startswith(code)


def test_embedding_without_element_is_rejected_not_silent():
    # matscholar has no vector for Z >= 104.
    result = matxfer.featurize(["NaCl", "Rf2O"], "cromel", errors="nan")
    assert [r.index for r in result.rejected] == [1]
    assert "Rf" in result.rejected[0].reason
    with pytest.raises(FeaturizationError, match="row 1"):
        matxfer.featurize(["NaCl", "Rf2O"], "cromel")


def test_bitwise_identical_for_any_thread_count(mp_gap_formulas):
    formulas = mp_gap_formulas[:20000]
    for preset in ["magpie", "magpie_full", "xenonpy"]:
        one = matxfer.featurize(formulas, preset, n_threads=1).values
        for n in (2, 3, 8):
            other = matxfer.featurize(formulas, preset, n_threads=n).values
            assert one.tobytes() == other.tobytes(), (preset, n)


def test_env_thread_count_is_read_and_checked():
    code = "import matxfer; print(matxfer.featurize(['NaCl']).values.shape)"
    env = dict(os.environ, MATXFER_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 132)"
    env["MATXFER_NUM_THREADS"] = "zero"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "MATXFER_NUM_THREADS" in bad.stderr


def test_float32_output():
    x64 = matxfer.featurize(FORMULAS).values
    x32 = matxfer.featurize(FORMULAS, dtype=np.float32).values
    assert x32.dtype == np.float32
    np.testing.assert_array_equal(x32, x64.astype(np.float32))


def test_argument_errors():
    with pytest.raises(InvalidArgumentError, match="unknown preset"):
        matxfer.featurize(["NaCl"], "nope")
    with pytest.raises(InvalidArgumentError):
        matxfer.featurize(["NaCl"], errors="ignore")
    with pytest.raises(InvalidArgumentError):
        matxfer.featurize(["NaCl"], dtype=np.int32)
    with pytest.raises(InvalidArgumentError):
        matxfer.featurize(["NaCl"], n_threads=0)


def test_empty_input():
    result = matxfer.featurize([], "magpie")
    assert result.values.shape == (0, 132)


def test_user_table_numpy_pandas_polars_agree():
    table, columns = matxfer.element_table("magpie")
    cols = [columns.index("Number"), columns.index("AtomicWeight")]
    sub = table[:, cols]
    from_numpy = matxfer.featurize(FORMULAS, table=sub, columns=["Z", "mass"])
    assert from_numpy.feature_names[:2] == ["ave:Z", "ave:mass"]
    assert len(from_numpy.feature_names) == 14
    symbols = matxfer.element_table("onehot")[1]
    frame = pd.DataFrame(sub, index=symbols, columns=["Z", "mass"])
    np.testing.assert_array_equal(matxfer.featurize(FORMULAS, table=frame).values, from_numpy.values)
    pframe = pl.DataFrame({"symbol": symbols, "Z": sub[:, 0], "mass": sub[:, 1]})
    np.testing.assert_array_equal(matxfer.featurize(FORMULAS, table=pframe).values, from_numpy.values)
    # Only some elements given: the others are missing -> NaN (or an error with missing="reject").
    small = frame.loc[["Fe", "O", "Na", "Cl"]]
    partial = matxfer.featurize(["Fe2O3", "NaCl", "KCl"], table=small, stats=["mean", "max"])
    assert np.isfinite(partial.values[:2]).all() and np.isnan(partial.values[2]).all()
    rejected = matxfer.featurize(["Fe2O3", "KCl"], table=small, missing="reject", errors="nan").rejected
    assert [r.index for r in rejected] == [1]
    with pytest.raises(InvalidArgumentError, match="unknown element symbol"):
        matxfer.featurize(["NaCl"], table=pd.DataFrame({"x": [1.0]}, index=["Qq"]))


def test_featurize_frame():
    frame = matxfer.featurize_frame(FORMULAS, "magpie")
    assert frame.columns[0] == "formula" and frame.shape == (5, 133)
    assert frame["formula"].to_list() == FORMULAS
    pframe = matxfer.featurize_frame(FORMULAS, "magpie", backend="pandas")
    np.testing.assert_array_equal(pframe.iloc[:, 1:].to_numpy(), frame.drop("formula").to_numpy())


def test_sklearn_pipeline(expt_gap_formulas):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    df = pd.read_csv(
        __import__("tests.conftest", fromlist=["shared"]).shared("composition/experimental/expt_gap_matbench.csv"),
        keep_default_na=False,
    )
    X, y = df[["formula"]].iloc[:1000], df["band_gap_expt_eV"].to_numpy()[:1000]
    featurizer = matxfer.CompositionFeaturizer("magpie")
    model = make_pipeline(featurizer, HistGradientBoostingRegressor(max_iter=60, random_state=0))
    cv = KFold(n_splits=3, shuffle=True, random_state=0)
    scores = cross_val_score(model, X, y, cv=cv, scoring="neg_mean_absolute_error")
    baseline = np.mean(np.abs(y - np.median(y)))
    assert -scores.mean() < 0.7 * baseline  # magpie features carry real signal on band gaps
    model.fit(X, y)
    names = model[0].get_feature_names_out()
    assert len(names) == 132 and names[0] == "MagpieData minimum Number"


def test_import_is_light():
    code = "import sys, matxfer; print(any(m in sys.modules for m in ('torch', 'pandas', 'polars', 'sklearn', 'pymatgen')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_forked_child_after_parallel_use_does_not_hang():
    """A child forked after the pool started (as in PyTorch DataLoader workers) must still work."""
    code = """
import multiprocessing as mp, matxfer
matxfer.featurize(["NaCl"] * 5000, n_threads=2)
def work(q):
    q.put(matxfer.featurize(["Fe2O3"] * 5000, n_threads=2).values.shape)
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=work, args=(q,))
p.start()
print(q.get(timeout=60))
p.join(60)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(5000, 132)"
