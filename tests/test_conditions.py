"""Conditioning inputs (temperature as extra columns) in the transfer strategies and in ``auto``, on
real ESTM thermoelectric measurements (Na & Chang 2022): the same composition at many temperatures."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import matxfer  # noqa: E402
from matxfer import library as lib  # noqa: E402
from matxfer.nn import predict  # noqa: E402
from matxfer.transfer import (  # noqa: E402
    Delta,
    Ensemble,
    FineTune,
    FrozenFeatures,
    LatentVariable,
    MultiTask,
    auto,
    composition_keys,
    default_target_config,
    grouped_folds,
    load_strategy,
    save_strategy,
)

from .conftest import read_shared_table  # noqa: E402

SOURCE = "matbench_log_gvrh/log10_shear_modulus/magpie_full/mlp"


@pytest.fixture(scope="module")
def estm():
    """log10 thermal conductivity at every measured temperature; descriptors with T as the last column;
    one fold of four that keeps each reduced composition whole."""
    e = read_shared_table("composition/experimental/thermoelectric_estm.csv")
    e = e[e.thermal_conductivity_W_per_mK > 0].reset_index(drop=True)
    formulas = e.formula.tolist()
    X = np.asarray(matxfer.featurize(formulas, preset="magpie_full", dtype=np.float32).values, dtype=np.float64)
    T = e.temperature_K.to_numpy(float)
    y = np.log10(e.thermal_conductivity_W_per_mK.to_numpy(float))
    train, test = grouped_folds(composition_keys(formulas), y, 4, 0, False)[0]
    source = lib.load(SOURCE, library=lib.shipped_dir()).to_torch()
    return {"formulas": formulas, "X": X, "XT": np.hstack([X, T[:, None]]), "T": T, "y": y, "train": train,
            "test": test, "source": source}


def _mae(strategy, X, d):
    pred = strategy.use_source(d["source"]).adapt(X[d["train"]], d["y"][d["train"]]).predict(X[d["test"]])
    return float(np.mean(np.abs(pred - d["y"][d["test"]])))


def test_grouped_folds_keep_every_composition_in_one_fold(estm):
    keys = composition_keys(estm["formulas"])
    folds = grouped_folds(keys, estm["y"], 5, 18012019, False)
    seen = np.zeros(len(keys), dtype=int)
    for train, test in folds:
        seen[test] += 1
        assert not set(keys[test].tolist()) & set(keys[train].tolist())
    assert (seen == 1).all()
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) < 0.2 * np.mean(sizes)  # balanced by rows


def test_temperature_as_a_condition_lowers_the_error_on_unseen_compositions(estm):
    # measured on this split (seeds 0-2): frozen ridge 0.1441 -> 0.1318, Delta 0.1241 -> 0.1051 (mean)
    frozen = _mae(FrozenFeatures(head="ridge"), estm["X"], estm)
    frozen_t = _mae(FrozenFeatures(head="ridge", n_conditions=1), estm["XT"], estm)
    assert frozen_t < 0.96 * frozen
    cfg = default_target_config(epochs=30)
    delta = _mae(Delta(target_config=cfg), estm["X"], estm)
    delta_t = _mae(Delta(n_conditions=1, target_config=cfg), estm["XT"], estm)
    assert delta_t < 0.93 * delta


def test_finetune_with_conditions_starts_exactly_at_the_source(estm):
    # the new first-layer inputs start at zero weight: with no training the source's prediction, bit for bit
    tuned = FineTune(n_conditions=1, target_config=default_target_config(epochs=0)).use_source(estm["source"])
    tuned.adapt(estm["XT"][estm["train"]], estm["y"][estm["train"]])
    test = estm["test"][:200]
    np.testing.assert_array_equal(tuned.predict(estm["XT"][test]), predict(estm["source"], estm["X"][test]))
    # and the conditions do reach it once it trains
    trained = FineTune(n_conditions=1, target_config=default_target_config(epochs=3)).use_source(estm["source"])
    trained.adapt(estm["XT"][estm["train"]], estm["y"][estm["train"]])
    hot = estm["XT"][test].copy()
    hot[:, -1] += 300.0
    assert np.abs(trained.predict(hot) - trained.predict(estm["XT"][test])).max() > 1e-4


def test_conditions_are_refused_where_they_cannot_be_used(estm):
    for cls in (MultiTask, LatentVariable):
        with pytest.raises(ValueError, match="does not take conditioning columns"):
            cls(n_conditions=1)
    with pytest.raises(ValueError, match="does not take conditioning columns"):
        Ensemble([Delta()], n_conditions=1)
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="n_conditions must be a whole number"):
            Delta(n_conditions=bad)
    XT = estm["XT"][:50].copy()
    XT[7, -1] = np.nan
    with pytest.raises(ValueError, match="column 0 of row 7 is not finite"):
        FrozenFeatures(n_conditions=1).use_source(estm["source"]).adapt(XT, estm["y"][:50])
    with pytest.raises(ValueError, match="too few"):
        FrozenFeatures(n_conditions=1).use_source(estm["source"]).adapt(estm["T"][:50, None], estm["y"][:50])
    # predicting without the temperature column is refused by name, not a shape error deep in torch
    fitted = FrozenFeatures(n_conditions=1).use_source(estm["source"]).adapt(estm["XT"][:80], estm["y"][:80])
    d = estm["X"].shape[1]
    with pytest.raises(ValueError, match=rf"adapted on {d + 1} columns \({d} descriptors \+ 1 conditioning\); X has {d}"):
        fitted.predict(estm["X"][:5])


def test_auto_with_conditions(estm, tmp_path):
    rng = np.random.default_rng(0)
    keys = composition_keys(estm["formulas"])
    chosen = set(rng.choice(np.unique(keys), 60, replace=False).tolist())
    rows = np.flatnonzero([k in chosen for k in keys.tolist()])
    f = [estm["formulas"][i] for i in rows]
    T, y = estm["T"][rows], estm["y"][rows]
    model = auto(f, y, conditions=T, sources=[SOURCE], library=lib.shipped_dir(), strategies=("frozen-ridge",),
                 next_strategies=(), baselines=("gbm",), inner_folds=3, n_jobs=1)
    assert model.report["conditions"] == 1 and model.report["inner_groups"].startswith("reduced composition")
    pred = model.predict(f[:40], conditions=T[:40])
    assert pred.shape == (40,) and np.isfinite(pred).all()
    # the temperature changes the prediction (every candidate sees it)
    assert np.abs(model.predict(f[:40], conditions=T[:40] + 400.0) - pred).max() > 1e-3
    with pytest.raises(ValueError, match="pass conditions="):
        model.predict(f[:5])
    with pytest.raises(ValueError, match="takes 1 condition column"):
        model.predict(f[:5], conditions=np.ones((5, 2)))
    with pytest.raises(ValueError, match="condition column 0 of row 2 is not finite"):
        auto(f, y, conditions=np.where(np.arange(len(y)) == 2, np.inf, T), sources=[SOURCE], library=lib.shipped_dir())
    save_strategy(model, tmp_path / "m")
    again = load_strategy(tmp_path / "m")
    np.testing.assert_array_equal(again.predict(f[:40], conditions=T[:40]), pred)
    lo, hi = again.predict_interval(f[:40], 0.9, conditions=T[:40])
    assert (lo <= pred).all() and (pred <= hi).all()


def test_tree_baseline_inner_search_keeps_compositions_whole(estm):
    """``TreeBaseline.adapt(..., groups=)``: the setting is the one that scores best on inner folds that keep
    each composition whole (recomputed here by hand), and those folds are the honest ones: with plain KFold a
    composition's other temperatures sit in the training side and the inner error is lower for every setting."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold

    from matxfer.transfer import TreeBaseline

    keys = composition_keys(estm["formulas"])
    train = estm["train"]
    X, y, g = estm["XT"][train], estm["y"][train], keys[train]
    grid = {"max_leaf_nodes": [3, 31], "learning_rate": [0.1]}
    model = TreeBaseline("gbm", grid=grid, n_estimators=60, seed=0).adapt(X, y, groups=g)
    grouped, plain = {}, {}
    for name, folds in (("grouped", grouped_folds(g, y, 3, 0, False)),
                        ("plain", list(KFold(3, shuffle=True, random_state=0).split(X)))):
        for leaves in grid["max_leaf_nodes"]:
            errs = []
            for tr, te in folds:
                m = HistGradientBoostingRegressor(max_iter=60, learning_rate=0.1, max_leaf_nodes=leaves,
                                                  early_stopping=False, random_state=0).fit(X[tr], y[tr])
                errs.append(np.mean(np.abs(m.predict(X[te]) - y[te])))
            (grouped if name == "grouped" else plain)[leaves] = float(np.mean(errs))
    assert model.best_params_["max_leaf_nodes"] == min(grouped, key=grouped.get)
    assert all(plain[k] < grouped[k] for k in grid["max_leaf_nodes"]), (plain, grouped)
    with pytest.raises(ValueError, match="one label per row"):
        TreeBaseline("gbm", grid=grid, n_estimators=60).adapt(X, y, groups=g[:-1])


def test_cross_validate_with_groups_never_splits_a_composition(estm):
    from sklearn.model_selection import KFold

    from matxfer.transfer import TreeBaseline, cross_validate

    keys = composition_keys(estm["formulas"])
    sub = np.flatnonzero(np.isin(keys, np.unique(keys)[:60]))  # every row of 60 compositions
    X, y, g = estm["XT"][sub], estm["y"][sub], keys[sub]
    base = TreeBaseline("gbm", grid={"max_leaf_nodes": [7]}, n_estimators=40)
    res = cross_validate(base, X, y, groups=g)
    assert len(res.folds) == 5 and np.isfinite(res.predictions).all()  # every row predicted once
    assert len(cross_validate(base, X, y, cv=3, groups=g).folds) == 3
    plain = cross_validate(base, X, y, cv=5)  # a number of folds: the matbench split
    np.testing.assert_array_equal(plain.predictions, cross_validate(base, X, y).predictions)
    # a splitter that ignores groups (scikit-learn warns so) is caught before any fitting
    with pytest.warns(UserWarning, match="groups parameter is ignored"), \
            pytest.raises(ValueError, match="has rows on both the training and the test side"):
        cross_validate(base, X, y, cv=KFold(5, shuffle=True, random_state=0), groups=g)
    with pytest.raises(ValueError, match="one label per row"):
        cross_validate(base, X, y, groups=g[1:])


def test_learning_curve_with_groups_holds_out_whole_compositions(estm):
    from matxfer.transfer import TreeBaseline, learning_curve

    keys = composition_keys(estm["formulas"])
    sub = np.flatnonzero(np.isin(keys, np.unique(keys)[:80]))
    X, y, g = estm["XT"][sub], estm["y"][sub], keys[sub]
    base = TreeBaseline("gbm", grid={"max_leaf_nodes": [7, 15]}, n_estimators=40)
    curve = learning_curve(base, X, y, sizes=(60, None), n_repeats=2, groups=g)
    test = np.zeros(len(y), dtype=bool)
    test[curve["test_index"]] = True
    assert not set(g[test].tolist()) & set(g[~test].tolist())  # no composition on both sides
    assert abs(test.mean() - 0.2) < 0.1 and curve["sizes"] == [60, int((~test).sum())]
    assert np.isfinite(curve["mae"]).all()


def test_bad_group_labels_are_refused_with_the_row():
    from matxfer.transfer import grouped_folds

    y = np.zeros(6)
    with pytest.raises(ValueError, match=r"row 1 has no label \(nan\)"):
        grouped_folds(np.array([1.0, np.nan, 2, 3, np.nan, 4]), y, 2)
    with pytest.raises(ValueError, match=r"row 2 has no label \(None\)"):
        grouped_folds(np.array(["a", "b", None, "c", "a", "d"], dtype=object), y, 2)
    with pytest.raises(ValueError, match="all strings or all numbers"):
        grouped_folds(np.array(["a", 1, "b", 2, "a", 3], dtype=object), y, 2)
    with pytest.raises(ValueError, match="one label per row"):
        grouped_folds([], y, 2)
    with pytest.raises(ValueError, match="too few"):
        grouped_folds(["a"] * 6, y, 2)
    assert len(grouped_folds(["a", "b", "c", "a", "b", "c"], y, 3)) == 3
