"""The crystalnn_ops and ofm structure presets of ``featurize_structures`` (and of ``matxfer
featurize``) on real shared structures: the same values as the descriptor functions they wrap (whose
matminer parity is tested in test_crystal_nn.py and test_ionic.py), every bad structure isolated and
named under ``errors="nan"``, the first one named under ``errors="raise"``."""

import csv
import json

import numpy as np
import pytest

from matxfer.exceptions import StructureError
from matxfer.ionic import orbital_field_matrix
from matxfer.local_env import site_stats_crystal_nn_ops
from matxfer.structures import (
    STRUCTURE_PRESETS,
    StructureBatch,
    featurize_structures,
    read_structures,
    structure_feature_names,
)

from .conftest import STRUCTURES

FUNCTIONS = {"crystalnn_ops": site_stats_crystal_nn_ops, "ofm": orbital_field_matrix}


@pytest.fixture(scope="module")
def structures():
    perov = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select(range(0, 2400, 80))
    piezo = read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl").select(range(0, 300, 30))
    return perov, piezo


def _with_slabs(batch, bad):
    """``batch`` with the structures at ``bad`` made periodic along a and b only."""
    pbc = np.ones((len(batch), 3), dtype=bool)
    pbc[bad, 2] = False
    ids = [f"s{k}" for k in range(len(batch))]
    return StructureBatch(batch.lattices, batch.frac_coords, batch.numbers, pbc, batch.ptr, ids)


@pytest.mark.parametrize("preset", ["crystalnn_ops", "ofm"])
def test_presets_are_the_descriptor_functions(structures, preset):
    assert preset in STRUCTURE_PRESETS
    for batch in structures:
        values, names = FUNCTIONS[preset](batch)
        result = featurize_structures(batch, preset)
        assert result.feature_names == names == structure_feature_names(preset)
        np.testing.assert_array_equal(result.values, values)
        assert not result.rejected and np.isfinite(result.values).all()
        assert result.values.shape == (len(batch), {"crystalnn_ops": 122, "ofm": 1024}[preset])
        single = featurize_structures(batch, preset, dtype="float32", n_threads=1)
        np.testing.assert_array_equal(single.values, values.astype(np.float32))


@pytest.mark.parametrize("preset", ["crystalnn_ops", "ofm"])
def test_bad_structures_are_isolated_and_named(structures, preset):
    batch = structures[0]
    bad = [0, 7, 8, 29]
    mixed = _with_slabs(batch, bad)
    result = featurize_structures(mixed, preset, errors="nan")
    assert [r.index for r in result.rejected] == bad
    assert [r.input for r in result.rejected] == [f"s{k}" for k in bad]
    assert all(r.reason.startswith(f"structure {r.index} (s{r.index}): ") and "periodic" in r.reason for r in result.rejected)
    assert np.isnan(result.values[bad]).all()
    good = np.setdiff1d(np.arange(len(batch)), bad)
    np.testing.assert_array_equal(result.values[good], featurize_structures(batch.select(good), preset).values)
    with pytest.raises(StructureError, match=r"structure 0 \(s0\).*periodic") as info:
        featurize_structures(mixed, preset)
    assert info.value.index == 0
    with pytest.raises(StructureError, match=r"structure 7 \(s7\)"):
        featurize_structures(_with_slabs(batch, [7]), preset)


def test_cli_featurizes_structures_with_the_new_presets(tmp_path):
    import polars as pl

    from .test_cli import run

    lines = (STRUCTURES / "mp_piezoelectric_matminer.jsonl").read_text().splitlines(keepends=True)[:9]
    record = json.loads(lines[6])
    record["pbc"] = [True, True, False]
    lines[6] = json.dumps(record) + "\n"
    path = tmp_path / "s.jsonl"
    path.write_text("".join(lines))
    good = [i for i in range(9) if i != 6]
    reference = read_structures(STRUCTURES / "mp_piezoelectric_matminer.jsonl").select(good)
    for preset in ("crystalnn_ops", "ofm"):
        out = tmp_path / f"{preset}.parquet"
        done = run("featurize", str(path), "--out", str(out), "--preset", preset, "--chunk-size", "4")
        assert done.returncode == 0, done.stderr
        table = pl.read_parquet(out)
        names = structure_feature_names(preset)
        assert table.columns == ["id", "formula", *names] and table.height == 9
        np.testing.assert_array_equal(table[good].select(names).to_numpy(), featurize_structures(reference, preset).values)
        assert table[6, names[0]] is None
        with open(f"{out}.errors.csv") as fh:
            report = list(csv.DictReader(fh))
        assert [int(r["row"]) for r in report] == [6] and "periodic" in report[0]["reason"]
