"""The command line: the README's main job and `matxfer featurize` on files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl

import matxfer
from matxfer.datasets import load_expt_gap


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matxfer", *args], capture_output=True, text=True, timeout=300)


def test_demo_writes_the_shipped_dataset_features(tmp_path):
    out = tmp_path / "demo.parquet"
    done = run("demo", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "rows                  4604" in done.stdout
    table = pl.read_parquet(out)
    expected = load_expt_gap()
    assert table.shape == (4604, 2 + 132)
    assert table["formula"].to_list() == expected["formula"].tolist()
    np.testing.assert_array_equal(table["band_gap_expt_eV"].cast(pl.Float64).to_numpy(), expected["band_gap_expt_eV"].to_numpy())
    features = table.drop(["formula", "band_gap_expt_eV"]).to_numpy()
    np.testing.assert_array_equal(features, matxfer.featurize(expected["formula"].tolist()).values)


def test_featurize_file_and_bad_rows(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("formula,target\nFe2O3,1.0\nNaN,2.0\n")
    out = tmp_path / "good.parquet"
    done = run("featurize", str(good), "--out", str(out), "--preset", "fraction", "--keep", "target")
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    assert table.columns[:2] == ["formula", "target"] and table["formula"].to_list() == ["Fe2O3", "NaN"]
    assert table["Na"].to_list() == [0.0, 0.5]

    bad = tmp_path / "bad.csv"
    bad.write_text("formula\nNaCl\nFe2Q3\n")
    done = run("featurize", str(bad), "--out", str(tmp_path / "bad.parquet"))
    assert done.returncode == 2
    assert "row 1" in done.stderr and "unknown element 'Q'" in done.stderr
    done = run("featurize", str(bad), "--out", str(tmp_path / "bad.parquet"), "--errors", "nan")
    assert done.returncode == 0 and "rejected row 1: 'Fe2Q3'" in done.stdout
    missing = run("featurize", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.parquet"))
    assert missing.returncode != 0 and "no such file" in missing.stderr
