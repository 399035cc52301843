"""The model library: format, verified loading, registry, numpy prediction, build and scan.

A tiny library (three small models from the real shared data) is built once per module; the
full library is never built in the test run.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

import matxfer  # noqa: E402
import matxfer.library as lib  # noqa: E402
from matxfer import ModelFormatError  # noqa: E402
from matxfer.library.builder import BuildConfig, _read, _split, default_data_dir  # noqa: E402

from .conftest import SHARED_DATA, shared  # noqa: E402

# two sizes as in the default recipe, scaled down: mp_gap (95,000 training rows) is a large source,
# m2ax (about 200) a small one
SMALL = BuildConfig(hidden=(16,), max_train_rows=1000, large_from_rows=50000, hidden_large=(32, 16), max_train_rows_large=3000,
                    max_test_rows=1000, epochs_large=6, epochs_small=15)
TASKS = ["mp_gap/band_gap", "mp_gap/is_metal", "m2ax/bulk_modulus"]
GAP, METAL, BULK = (f"{t}/magpie/mlp" for t in TASKS)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    names = lib.build(out=root, data_dir=SHARED_DATA, presets=("magpie",), tasks=TASKS, config=SMALL, n_threads=1, progress=False)
    assert sorted(names) == sorted([GAP, METAL, BULK])
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


class _Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_card_records_source_rows_and_metrics(library):
    card = lib.card(GAP, library=library)
    assert card["schema"] == lib.CARD_SCHEMA
    assert card["property"] == {"name": "band_gap", "units": "eV", "description": "PBE band gap"}
    assert card["task"] == "regression" and card["modality"] == "composition"
    assert card["descriptor"]["preset"] == "magpie" and card["descriptor"]["n_features"] == 132
    assert card["architecture"]["init_args"]["hidden"] == [32, 16]
    assert card["training"]["seed"] == 0 and card["metrics"]["mae"] > 0
    assert "CC BY 4.0" in card["source"]["license"] and card["source"]["citation"]
    # the recorded hash is the hash of exactly the rows the split function selects
    task = next(t for t in lib.builder.TASKS if t.key == "mp_gap/band_gap")
    formulas, y = _read(default_data_dir() if SHARED_DATA is None else Path(SHARED_DATA), task)
    train, _, pool = _split(formulas, SMALL)
    assert card["source"]["n_rows_train"] == len(train) == 3000 and pool > 90000
    assert f"at most 3000 of the {pool} others" in card["source"]["split"]
    assert card["source"]["rows_sha256"] == lib.rows_sha256(formulas[train], y[train])


def test_numpy_prediction_matches_torch_and_descriptors(library):
    from matxfer.nn import predict

    model = lib.load(GAP, library=library)
    formulas = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False,
                           dtype={"formula": str}).formula.tolist()
    pred, err = model.predict(formulas, chunk_size=1000, return_error=True)
    assert pred.shape == (len(formulas),) and pred.dtype == np.float64 and err == model.card["metrics"]["mae"]
    X = matxfer.featurize(formulas, "magpie", dtype=np.float32).values
    np.testing.assert_allclose(pred, predict(model.to_torch(), X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.predict(X, chunk_size=1000), pred)
    proba = lib.load(METAL, library=library).predict(formulas[:200])
    assert ((proba >= 0) & (proba <= 1)).all()
    with pytest.raises(ValueError, match="132 descriptor columns"):
        model.predict(np.zeros((3, 7), np.float32))


def test_fast_network_path_matches_per_layer_reference(library):
    # raw_output (blocked, preallocated buffers, SiLU with the halving folded into the weights)
    # against hidden_states (one temporary per step): equal to float32 rounding, missing and
    # infinite descriptors included, for any block size
    model = lib.load(GAP, library=library)
    formulas = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False,
                           dtype={"formula": str}).formula.tolist()[:3000]
    X = model.featurize(formulas)
    X[5, 3], X[17, 0], X[2999, -1] = np.nan, np.inf, -np.inf
    ref = model.network.raw_output_reference(X)
    assert np.isfinite(ref).all()
    for block in (1, 7, 1000, 16384):
        np.testing.assert_allclose(model.network.raw_output(X, block=block), ref, rtol=1e-5, atol=1e-5)
    assert model.network.raw_output(X[:0]).shape == (0, 1)


def test_import_and_predict_without_torch(library):
    code = (
        "import sys, matxfer, matxfer.library as lib\n"
        f"m = lib.load({GAP!r}, library={str(library)!r})\n"
        "print(m.predict(['Fe2O3', 'NaCl', 'NaN']).round(3).tolist())\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3


def test_refuses_pickle_tampered_truncated_unknown_class_and_schema(library, tmp_path):
    marker = tmp_path / "pwned"
    # a pickle where the weights belong
    bad = _copy(library / GAP, tmp_path / "pickle")
    with open(bad / "weights.safetensors", "wb") as fh:
        pickle.dump(_Payload(marker), fh)
    with pytest.raises(ModelFormatError, match=r"weights.safetensors: it is a Python pickle"):
        lib.load(str(bad))
    # a pickle where the card belongs
    bad = _copy(library / GAP, tmp_path / "pickle_card")
    with open(bad / "card.json", "wb") as fh:
        pickle.dump(_Payload(marker), fh)
    with pytest.raises(ModelFormatError, match=r"card.json: it is a Python pickle"):
        lib.load(str(bad))
    assert not marker.exists()
    # one flipped byte in the weights
    bad = _copy(library / GAP, tmp_path / "tampered")
    raw = bytearray((bad / "weights.safetensors").read_bytes())
    raw[-3] ^= 0x01
    (bad / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="sha256 .* does not match"):
        lib.load(str(bad))
    # truncated weights, even with a card that records the truncated file's hash
    bad = _copy(library / GAP, tmp_path / "truncated")
    data = (bad / "weights.safetensors").read_bytes()[:1000]
    (bad / "weights.safetensors").write_bytes(data)
    card = json.loads((bad / "card.json").read_text())
    card["weights"]["sha256"] = matxfer._safeio.sha256_bytes(data)
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match="not a valid safetensors file"):
        lib.load(str(bad))
    # unknown class, incompatible schema, a preset this version does not have
    for case, change, message in (
        ("class", {"class": "subprocess.Popen"}, "unknown model class 'subprocess.Popen'"),
        ("schema", {"schema": "matxfer.model-card/99"}, "schema 'matxfer.model-card/99' is not readable"),
        ("preset", {"descriptor": {"preset": "magpie_v9", "feature_names_sha256": "0"}}, "preset 'magpie_v9' is unknown"),
    ):
        bad = _copy(library / GAP, tmp_path / case)
        card = json.loads((bad / "card.json").read_text())
        card.update(change)
        (bad / "card.json").write_text(json.dumps(card))
        with pytest.raises(ModelFormatError, match=message) as info:
            lib.load(str(bad))
        assert str(bad / "card.json") in str(info.value)


def test_search_filters_agree_with_cards(library):
    every = lib.list(library)
    assert sorted(every.name) == sorted([GAP, METAL, BULK])
    cards = {n: lib.card(n, library=library) for n in every.name}
    assert list(lib.search(task="classification", library=library).name) == [METAL]
    assert sorted(lib.search(dataset="mp_gap", library=library).name) == sorted([GAP, METAL])
    assert list(lib.search(property="bulk", library=library).name) == [BULK]
    bound = cards[GAP]["metrics"]["mae"]
    hits = lib.search(mae_max=bound, library=library).name.tolist()
    assert hits == sorted(n for n, c in cards.items() if c["metrics"].get("mae") is not None and c["metrics"]["mae"] <= bound)
    assert lib.search(preset="xenonpy", library=library).empty
    with pytest.raises(matxfer.ArgumentTypeError, match="unknown filter 'mae_below'; valid filters: property, ") as bad:
        lib.search(mae_below=1, library=library)
    assert isinstance(bad.value, TypeError)  # existing `except TypeError` clauses keep working
    assert "mae_max" in str(bad.value) and "roc_auc_min" in str(bad.value)
    with pytest.raises(matxfer.ModelNotFoundError, match="no library model 'mp_gap/no_such/magpie_full/mlp' in ") as err:
        lib.load("mp_gap/no_such/magpie_full/mlp", library=library)
    assert isinstance(err.value, KeyError)  # existing `except KeyError` clauses keep working


def test_register_and_rebuild_is_byte_identical(library, tmp_path):
    model = lib.load(BULK, library=library)
    assert model.card["architecture"]["init_args"]["hidden"] == [16]  # a small source: the small network
    assert model.card["source"]["n_rows_train"] < 1000
    card = {k: v for k, v in model.card.items() if k not in ("weights", "_path")}
    card["name"] = "mine/bulk_modulus/magpie/mlp"
    path = lib.register(model.to_torch(), card, library=tmp_path / "user")
    again = lib.load("mine/bulk_modulus/magpie/mlp", library=tmp_path / "user")
    np.testing.assert_array_equal(again.predict(["Ti2AlC", "Cr2GaN"]), model.predict(["Ti2AlC", "Cr2GaN"]))
    with pytest.raises(FileExistsError):
        lib.register(model.to_torch(), card, library=tmp_path / "user")
    assert path.is_dir()
    # same data, machine and thread count: the same bytes
    lib.build(out=tmp_path / "again", data_dir=SHARED_DATA, presets=("magpie",), tasks=["m2ax/bulk_modulus"], config=SMALL,
              n_threads=1, progress=False)
    for f in ("card.json", "weights.safetensors"):
        assert (tmp_path / "again" / BULK / f).read_bytes() == (library / BULK / f).read_bytes()


def test_scan_ranks_same_property_source_first(library, tmp_path):
    expt = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    expt = expt.sample(600, random_state=0)
    from matxfer.transfer import scan

    result = scan(expt.formula.tolist(), expt.band_gap_expt_eV.to_numpy(float), library=library,
                  models=[GAP, BULK], cv=3, n_jobs=2, baselines=("ridge",), plot=str(tmp_path / "scan.png"))
    table = result.table
    frozen = table[(table.kind == "source") & (table.strategy == "frozen-ridge")]
    assert frozen.name.tolist()[0] == GAP, frozen
    assert frozen.mae.iloc[0] < 0.95 * frozen.mae.iloc[1]
    assert len(result.selected) == 3 and all(s.startswith(GAP) for s in result.selected)
    assert (tmp_path / "scan.png").stat().st_size > 1000


def test_scan_tree_baselines_choose_settings_by_inner_cv(library):
    # The scan's gbm and rf rows are the inner-CV TreeBaseline a user would otherwise pick (the same
    # grid as cross_validate and auto), not one fixed setting: same folds, same numbers.
    from sklearn.model_selection import KFold

    from matxfer.transfer import TreeBaseline, scan

    expt = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    expt = expt.sample(240, random_state=1)
    formulas, y = expt.formula.tolist(), expt.band_gap_expt_eV.to_numpy(float)
    result = scan(formulas, y, library=library, models=[GAP], strategies=("frozen-ridge",), cv=3, n_jobs=2,
                  baselines=("gbm", "rf"))
    X = np.asarray(matxfer.featurize(formulas, preset="magpie_full", errors="nan", dtype=np.float32).values, dtype=np.float64)
    for kind in ("gbm", "rf"):
        maes = []
        for train, test in KFold(3, shuffle=True, random_state=18012019).split(X):
            tree = TreeBaseline(kind, seed=18012019).adapt(X[train], y[train])
            maes.append(np.mean(np.abs(tree.predict(X[test]) - y[test])))
        row = result.table[result.table.strategy == kind]
        assert len(row) == 1
        assert row.mae.iloc[0] == pytest.approx(np.mean(maes), rel=1e-12)
    with pytest.raises(ValueError, match="unknown baselines"):
        scan(formulas[:30], y[:30], library=library, models=[GAP], baselines=("xgboost",))


def test_fit_tree_scores_settings_on_the_inner_folds_it_is_given():
    # explicit inner folds (e.g. grouped by material) replace the KFold: the chosen setting is the one
    # with the lowest MAE on those folds, computed here independently
    from sklearn.ensemble import HistGradientBoostingRegressor

    from matxfer._trees import fit_tree

    expt = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    expt = expt.sample(400, random_state=3)
    X = np.asarray(matxfer.featurize(expt.formula.tolist(), preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
    y = expt.band_gap_expt_eV.to_numpy(float)
    grid = {"max_leaf_nodes": [3, 31], "learning_rate": [0.3]}
    rng = np.random.default_rng(0)
    for _ in range(2):
        cut = rng.permutation(400)
        folds = [(np.sort(cut[:300]), np.sort(cut[300:])), (np.sort(cut[100:]), np.sort(cut[:100]))]
        maes = {}
        for leaves in grid["max_leaf_nodes"]:
            maes[leaves] = np.mean([np.mean(np.abs(HistGradientBoostingRegressor(
                max_iter=40, learning_rate=0.3, max_leaf_nodes=leaves, early_stopping=False, random_state=0)
                .fit(X[tr], y[tr]).predict(X[te]) - y[te])) for tr, te in folds])
        model, params = fit_tree("gbm", X, y, False, grid=grid, seed=0, n_estimators=40, cv=folds)
        assert params["max_leaf_nodes"] == min(maes, key=maes.get)
        assert model.max_leaf_nodes == params["max_leaf_nodes"]


def test_cli_build_takes_model_size_and_rows(tmp_path, capsys):
    from matxfer.cli import main
    from matxfer.exceptions import InvalidArgumentError

    out = tmp_path / "lib"
    args = ["library", "build", "--out", str(out), "--data", str(SHARED_DATA), "--presets", "magpie", "--tasks",
            "m2ax/bulk_modulus", "--modalities", "composition", "--hidden", "24", "12", "--max-train-rows", "120"]
    assert main(args) == 0
    card = json.loads((out / BULK / "card.json").read_text())
    assert card["build"]["config"]["hidden"] == [24, 12] and card["source"]["n_rows_train"] == 120
    assert list(lib.load(BULK, library=out).to_torch().init_args["hidden"]) == [24, 12]
    # the large-source size: m2ax counts as large from 100 training rows
    large = ["--large-from-rows", "100", "--hidden-large", "20", "10", "--max-train-rows-large", "150"]
    assert main(args[:-5] + ["--out", str(tmp_path / "lib2")] + large) == 0
    card = json.loads((tmp_path / "lib2" / BULK / "card.json").read_text())
    assert card["architecture"]["init_args"]["hidden"] == [20, 10] and card["source"]["n_rows_train"] == 150
    capsys.readouterr()
    for bad, says in ((["--hidden", "0"], "hidden must be"), (["--max-train-rows", "0"], "max_train_rows must be"),
                      (["--hidden-large", "-3"], "hidden_large must be"), (["--large-from-rows", "0"], "large_from_rows must be")):
        assert main(args[:-5] + bad) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="lr must be"):
        BuildConfig(lr=float("nan"))


def test_cli_list_show_predict(library, tmp_path, capsys):
    from matxfer.cli import main

    assert main(["library", "search", "--task", "classification", "--library", str(library)]) == 0
    out = capsys.readouterr().out
    assert METAL in out and GAP not in out and "1 model(s)" in out
    assert main(["library", "show", GAP, "--library", str(library)]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == GAP
    src = tmp_path / "in.csv"
    src.write_text("formula,note\nFe2O3,a\nNaN,sodium nitride\nGaAs,c\n")
    assert main(["predict", GAP, str(src), "--out", str(tmp_path / "out.csv"), "--library", str(library)]) == 0
    result = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert result.formula.tolist() == ["Fe2O3", "NaN", "GaAs"] and "band_gap" in result
    np.testing.assert_allclose(result.band_gap.to_numpy(float), lib.load(GAP, library=library).predict(["Fe2O3", "NaN", "GaAs"]),
                               rtol=1e-6)
    assert main(["library", "show", "no/such/model", "--library", str(library)]) == 2


def test_shipped_models_load_and_are_redistributable():
    shipped = lib.shipped_dir()
    frame = lib.list(shipped)
    assert len(frame) >= 25
    size = sum(f.stat().st_size for f in shipped.rglob("*") if f.is_file())
    assert size <= 25e6
    notice = (shipped / "NOTICE.md").read_text()
    for row in frame.itertuples():
        assert row.shippable and "glass" not in row.name and f"`{row.name}`" in notice
        model = lib.load(row.name, library=shipped)
        if row.modality == "structure":  # cubic SrTiO3 (a = 3.905 angstrom)
            srtio3 = {"lattice": np.eye(3) * 3.905, "species": ["Sr", "Ti", "O", "O", "O"],
                      "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]}
            assert np.isfinite(model.predict([srtio3])).all()
            continue
        assert np.isfinite(model.predict(["Fe2O3", "NaCl"])).all()


def test_predict_is_bit_identical_for_any_chunk_size_and_thread_count(mp_gap_formulas, expt_gap_formulas):
    # A shipped model (magpie_full, 256-128) on real formulas: chunks and worker threads only
    # split the work; every row goes through the same BLAS block at the same position, so the
    # bits do not move. The old pipeline (GEMMs shaped by the chunk) failed this.
    model = lib.load("mp_gap/band_gap/magpie_full/mlp", library=lib.shipped_dir())
    formulas = expt_gap_formulas + mp_gap_formulas[:6000]
    ref = model.predict(formulas, n_threads=1)
    for chunk_size, n_threads in [(1, 2), (1000, 2), (2500, 3), (4096, 1), (65536, 2)]:
        np.testing.assert_array_equal(model.predict(formulas, chunk_size=chunk_size, n_threads=n_threads), ref)
    X = model.featurize(formulas)
    np.testing.assert_array_equal(model.predict(X, chunk_size=3000, n_threads=2), ref)
    # the fast path is the network of the card to float32 rounding
    np.testing.assert_allclose(ref, model.network.raw_output_reference(X)[:, 0], rtol=1e-5, atol=1e-5)
    frozen = model.transform(formulas[:3000], chunk_size=1000, n_threads=2)
    np.testing.assert_array_equal(frozen, model.transform(formulas[:3000], n_threads=1))
    # a bad row in a later chunk is named by its index in the whole input
    with pytest.raises(matxfer.FormulaError, match="row 5000: .*Xx2") as info:
        model.predict(formulas[:5000] + ["Xx2"], chunk_size=1024, n_threads=2)
    assert info.value.index == 5000
    # one formula string is one row (it was split into characters); bad sizes and counts are refused
    # (to rounding: the row sits at another position of its BLAS block)
    np.testing.assert_allclose(model.predict(formulas[3]), ref[3:4], rtol=1e-5, atol=1e-6)
    with pytest.raises(matxfer.InvalidArgumentError, match="chunk_size"):
        model.predict(formulas[:10], chunk_size=0)
    with pytest.raises(matxfer.ArgumentTypeError, match="n_threads"):
        model.predict(formulas[:10], n_threads=True)


def test_scan_ridge_from_the_shared_cross_product_matches_the_direct_fit():
    # the scan gets each fold's Gram matrix from the whole set's minus the test rows'; on real
    # frozen features (expt_gap through a shipped source) it must give the direct fit's ridge
    from matxfer.library.scan import _folds, _ridge_fit, _ridge_predict

    data = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    y = data.band_gap_expt_eV.to_numpy(float)[:2000]
    H = lib.load("mp_gap/band_gap/magpie_full/mlp", library=lib.shipped_dir()).transform(data.formula.tolist()[:2000]).astype(np.float64)
    H -= H.mean(axis=0)
    cross = H.T @ H
    for train, test in _folds(len(y), 3, 0):
        direct = _ridge_fit(H[train], y[train])
        shared_fit = _ridge_fit(H[train], y[train], cross - H[test].T @ H[test])
        assert direct[-1] == pytest.approx(shared_fit[-1], rel=1e-8)
        np.testing.assert_allclose(_ridge_predict(shared_fit, H[test]), _ridge_predict(direct, H[test]), rtol=0, atol=1e-8)
        # a wrong cross-product (not this fold's) is not silently equivalent
        assert _ridge_fit(H[train], y[train], cross)[-1] != pytest.approx(direct[-1], rel=1e-6)


def test_build_config_sizes_a_source_by_its_rows():
    config = BuildConfig()
    assert config.size_for(49999) == ((256, 128), 20000)
    assert config.size_for(50000) == ((512, 256, 128), 100000)
    # a card written before the two sizes existed: one size for every source
    old = {k: v for k, v in config.recipe().items() if k not in ("large_from_rows", "hidden_large", "max_train_rows_large")}
    old["hidden"] = [64, 32]  # as JSON gives it back
    assert BuildConfig.from_recipe(old).size_for(10**7) == ((64, 32), 20000)
    assert BuildConfig.from_recipe(json.loads(json.dumps(config.recipe()))) == config
