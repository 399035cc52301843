"""matxfer.transfer on real data: mp_gap (DFT) -> expt_gap (experiment), small seeded slices.

The central checks compare each strategy with the *same* strategy built on a deliberately untrained
source model (same architecture and input scaling, random weights) on a fixed split: if a strategy
stopped using its source (or broke it), these fail.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import matxfer  # noqa: E402
from matxfer.nn import MLP, TrainConfig, predict  # noqa: E402
from matxfer.transfer import (  # noqa: E402
    Delta,
    Ensemble,
    FineTune,
    FromScratch,
    FrozenFeatures,
    LatentVariable,
    MultiTask,
    composition_keys,
    cross_validate,
    default_joint_config,
    learning_curve,
    learning_curve_plot,
    matbench_kfold,
    overlap_mask,
    parity_plot,
    pretrain_mlp,
    regression_metrics,
)

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
HIDDEN = (64, 32)
N_TRAIN, N_TEST = 150, 400


def _read(path, column):
    pd = pytest.importorskip("pandas")
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    df = pd.read_csv(path, keep_default_na=False, na_values={column: [""]}, dtype={"formula": str})
    return df.formula.tolist(), df[column].to_numpy(float)


class GapData:
    def __init__(self):
        t_formulas, t_y = _read(DATA / "composition/experimental/expt_gap_matbench.csv", "band_gap_expt_eV")
        s_formulas, s_y = _read(DATA / "composition/dft/mp_gap_matbench.csv", "band_gap_pbe_eV")
        rng = np.random.default_rng(0)
        t_idx = rng.choice(len(t_y), size=N_TRAIN + N_TEST, replace=False)
        self.t_formulas = [t_formulas[i] for i in t_idx]
        X, _ = matxfer.featurize(self.t_formulas, preset="magpie")
        self.X, self.y = np.asarray(X), t_y[t_idx]
        self.train, self.test = np.arange(N_TRAIN), np.arange(N_TRAIN, N_TRAIN + N_TEST)
        # The source excludes every composition of the target slice, so nothing is memorised.
        s_idx = rng.choice(len(s_y), size=12000, replace=False)
        s_sel = [s_formulas[i] for i in s_idx]
        keep = ~overlap_mask(s_sel, self.t_formulas)
        Xs, _ = matxfer.featurize([f for f, k in zip(s_sel, keep) if k], preset="magpie")
        self.Xs, self.ys = np.asarray(Xs), s_y[s_idx][keep]
        config = TrainConfig(epochs=12, batch_size=256, lr=2e-3, patience=None, val_fraction=0.0, device="cpu")
        self.source = pretrain_mlp(self.Xs, self.ys, hidden=HIDDEN, config=config)
        torch.manual_seed(123)
        self.untrained = MLP(self.Xs.shape[1], HIDDEN).fit_scaling(self.Xs).fit_target_scaling(self.ys).eval()


@pytest.fixture(scope="module")
def gap():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return GapData()


def target_config(**kw):
    base = dict(epochs=80, batch_size=32, lr=1e-3, weight_decay=1e-3, patience=12, val_fraction=0.15, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


JOINT = default_joint_config(epochs=8, batch_size=256, patience=4, device="cpu")

STRATEGIES = {
    "frozen_ridge": lambda: FrozenFeatures(head="ridge", hidden=HIDDEN, target_config=target_config()),
    "frozen_mlp": lambda: FrozenFeatures(head="mlp", head_hidden=(32,), hidden=HIDDEN, target_config=target_config()),
    "finetune": lambda: FineTune(hidden=HIDDEN, target_config=target_config()),
    "finetune_frozen_first": lambda: FineTune(freeze_first=1, layer_lr_decay=0.5, hidden=HIDDEN,
                                              target_config=target_config()),
    "multitask": lambda: MultiTask(max_source_rows=4000, joint_config=JOINT, hidden=HIDDEN,
                                   target_config=target_config()),
    "latent": lambda: LatentVariable(max_source_rows=4000, joint_config=JOINT, hidden=HIDDEN,
                                     target_config=target_config()),
    "delta": lambda: Delta(hidden=HIDDEN, target_config=target_config()),
    "delta_ridge": lambda: Delta(head="ridge", hidden=HIDDEN, target_config=target_config()),
    "delta_gbm": lambda: Delta(head="gbm", hidden=HIDDEN, target_config=target_config()),
}


def _test_mae(strategy, gap):
    strategy.adapt(gap.X[gap.train], gap.y[gap.train])
    return regression_metrics(gap.y[gap.test], strategy.predict(gap.X[gap.test]))["mae"]


@pytest.fixture(scope="module")
def scratch_mae(gap):
    return _test_mae(FromScratch(hidden=HIDDEN, target_config=target_config()), gap)


# Bounds on test MAE ratios: (trained / same strategy on the untrained source, trained / scratch).
# Each is the mean + 2 sd over three seeds (target slice, source subset, source, untrained and
# strategy seeds 0/1/2; the figures per seed are in the comments), the first capped at 1: a strategy
# must beat itself on an untrained source. The test runs the seed-0 split. With 150 target rows,
# beating scratch depends on the split: on seed 0 eight of nine strategies beat it, on seed 2 only
# multitask and latent do, so the second bound only says "not much worse than scratch".
BOUNDS = {
    #                               trained / untrained      trained / scratch
    "frozen_ridge": (1.00, 1.16),  # 0.792 / 0.858 / 0.972    0.980 / 1.045 / 1.093
    "frozen_mlp": (0.97, 1.16),  # 0.896 / 0.902 / 0.946    1.021 / 0.992 / 1.104
    "finetune": (0.99, 1.17),  # 0.699 / 0.778 / 0.893    0.831 / 0.867 / 1.060
    "finetune_frozen_first": (0.85, 1.16),  # 0.619 / 0.699 / 0.766    0.886 / 0.958 / 1.067
    "multitask": (0.94, 1.07),  # 0.739 / 0.844 / 0.848    0.826 / 0.925 / 0.976
    "latent": (0.91, 1.04),  # 0.730 / 0.818 / 0.832    0.836 / 0.914 / 0.962
    "delta": (1.00, 1.13),  # 0.941 / 0.901 / 0.965    0.870 / 0.943 / 1.045
    "delta_ridge": (0.99, 1.04),  # 0.810 / 0.877 / 0.922    1.004 / 1.005 / 1.028
    "delta_gbm": (1.00, 1.08),  # 0.859 / 0.945 / 1.006    0.951 / 0.910 / 1.019
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_transfer_beats_untrained_source_and_scratch(name, gap, scratch_mae):
    trained = _test_mae(STRATEGIES[name]().use_source(gap.source, gap.Xs, gap.ys), gap)
    untrained = _test_mae(STRATEGIES[name]().use_source(gap.untrained, gap.Xs, gap.ys), gap)
    bound_untrained, bound_scratch = BOUNDS[name]
    assert trained < bound_untrained * untrained, (name, trained, untrained)
    assert trained < bound_scratch * scratch_mae, (name, trained, scratch_mae)


def test_source_is_never_modified_and_fresh_drops_target_state(gap):
    strategy = FineTune(hidden=HIDDEN, target_config=target_config(epochs=5)).use_source(gap.source)
    before = copy.deepcopy(strategy.source_model_.state_dict())
    strategy.adapt(gap.X[gap.train], gap.y[gap.train])
    for key, value in strategy.source_model_.state_dict().items():
        torch.testing.assert_close(value, before[key])
    # the caller's model is not the strategy's copy
    assert strategy.source_model_ is not gap.source
    clone = strategy.fresh()
    assert clone.target_ is None and not clone.is_adapted_ and strategy.is_adapted_
    with pytest.raises(RuntimeError, match="adapt"):
        clone.predict(gap.X[:3])
    assert "FineTune(" in repr(strategy) and "[adapted]" in repr(strategy)


def test_adapt_is_reproducible_and_inference_deterministic(gap):
    preds = []
    for _ in range(2):
        s = Delta(hidden=HIDDEN, target_config=target_config(epochs=10)).use_source(gap.source)
        s.adapt(gap.X[gap.train], gap.y[gap.train])
        preds.append(s.predict(gap.X[gap.test]))
    np.testing.assert_array_equal(preds[0], preds[1])
    np.testing.assert_array_equal(s.predict(gap.X[gap.test]), s.predict(gap.X[gap.test]))


def test_cross_validation_uses_a_fresh_copy_per_fold(gap):
    strategy = FineTune(hidden=HIDDEN, target_config=target_config(epochs=4)).use_source(gap.source)
    before = copy.deepcopy(strategy.source_model_.state_dict())
    X, y = gap.X[:200], gap.y[:200]
    result = cross_validate(strategy, X, y)
    assert len(result.folds) == 5 and np.isfinite(result.predictions).all()
    assert not strategy.is_adapted_
    for key, value in strategy.source_model_.state_dict().items():
        torch.testing.assert_close(value, before[key])
    # the default splitter is the matbench protocol
    cv = matbench_kfold()
    assert (cv.n_splits, cv.shuffle, cv.random_state) == (5, True, 18012019)
    # and fold predictions equal adapting a fresh strategy on that fold by hand
    train_idx, test_idx = next(cv.split(X))
    manual = FineTune(hidden=HIDDEN, target_config=target_config(epochs=4)).use_source(gap.source)
    manual.adapt(X[train_idx], y[train_idx])
    np.testing.assert_allclose(result.predictions[test_idx], manual.predict(X[test_idx]), atol=1e-6)


def test_overlap_mask_matches_pymatgen_reduced_formula(gap):
    Composition = pytest.importorskip("pymatgen.core").Composition
    target = gap.t_formulas[:200]
    source = ["K4Mn4O8", "Fe2O3", "Fe4O6", "SiO2", "NaN"] + gap.t_formulas[:20]
    mask = overlap_mask(source, target)
    reduced = {Composition(f).reduced_formula for f in target}
    expected = np.array([Composition(f).reduced_formula in reduced for f in source])
    np.testing.assert_array_equal(mask, expected)
    keys = composition_keys(["Fe2O3", "Fe4O6", "FeO"])
    assert keys[0] == keys[1] != keys[2]


def test_frozen_features_layers_and_sklearn_head(gap):
    from sklearn.neighbors import KNeighborsRegressor

    s = FrozenFeatures(head=KNeighborsRegressor(5), layers=[-1], include_source_prediction=False)
    s.use_source(gap.source)
    assert s.transform(gap.X[:7]).shape == (7, HIDDEN[-1])
    s_all = FrozenFeatures().use_source(gap.source)
    assert s_all.transform(gap.X[:7]).shape == (7, sum(HIDDEN) + 1)
    mae = _test_mae(s, gap)
    assert np.isfinite(mae)


def test_gbm_head_is_deterministic_boosting_on_source_prediction(gap):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from matxfer.transfer.heads import gbm_regressor

    fits = [Delta(head="gbm", seed=3).use_source(gap.source).adapt(gap.X[gap.train], gap.y[gap.train])
            for _ in range(2)]
    head = fits[0].target_
    assert isinstance(head, HistGradientBoostingRegressor)
    assert head.loss == "squared_error" and head.random_state == 3 and not head.early_stopping
    np.testing.assert_array_equal(fits[0].predict(gap.X[gap.test]), fits[1].predict(gap.X[gap.test]))
    # the boosted trees see the source prediction as a feature (last column) and learn a correction
    assert head.n_features_in_ == gap.X.shape[1] + 1
    correction = fits[0].predict(gap.X[gap.test]) - fits[0].source_predict(gap.X[gap.test])
    assert np.abs(correction).mean() > 1e-3
    # as a frozen-feature head too
    frozen = FrozenFeatures(head=gbm_regressor(max_iter=50)).use_source(gap.source).adapt(gap.X[gap.train], gap.y[gap.train])
    assert np.isfinite(frozen.predict(gap.X[gap.test])).all()


def test_gbm_head_learns_expt_gap_where_absolute_error_boosting_stalls():
    # The default "gbm" head on 1,000 expt_gap rows (magpie, 300 trees), 600 held-out rows, three
    # random subsets. Measured: squared loss 0.503 / 0.485 / 0.487 eV, ridge 0.769 / 0.805 / 0.747;
    # the former absolute-error default gave 0.484 / 0.477 / 0.878 (subset 2 stalled at the median
    # predictor's 0.878), so "beats ridge by 20 % on every subset" fails for it.
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from matxfer.transfer.heads import gbm_regressor

    formulas, y = _read(DATA / "composition/experimental/expt_gap_matbench.csv", "band_gap_expt_eV")
    X = np.asarray(matxfer.featurize(formulas, preset="magpie", errors="nan").values)
    Xr = np.nan_to_num(X)
    for seed in range(3):
        idx = np.random.default_rng(seed).permutation(len(y))
        tr, te = idx[:1000], idx[1000:1600]
        with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP threads spin on a busy machine
            gbm = np.mean(np.abs(gbm_regressor(0, max_iter=300).fit(X[tr], y[tr]).predict(X[te]) - y[te]))
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 22))).fit(Xr[tr], y[tr])
        assert gbm < 0.8 * np.mean(np.abs(ridge.predict(Xr[te]) - y[te])), seed


def test_finetune_freezes_first_layers_and_checks_layer_lrs(gap):
    s = FineTune(freeze_first=1, hidden=HIDDEN, target_config=target_config(epochs=5)).use_source(gap.source)
    s.adapt(gap.X[gap.train], gap.y[gap.train])
    torch.testing.assert_close(s.target_.layers[0][0].weight, gap.source.layers[0][0].weight)
    assert not torch.allclose(s.target_.layers[1][0].weight, gap.source.layers[1][0].weight)
    with pytest.raises(ValueError, match="layer_lrs"):
        FineTune(layer_lrs=[1e-3]).use_source(gap.source).adapt(gap.X[:50], gap.y[:50])


def test_multitask_keeps_both_tasks(gap):
    s = MultiTask(max_source_rows=4000, joint_config=JOINT, hidden=HIDDEN).use_source(gap.source, gap.Xs, gap.ys)
    s.adapt(gap.X[gap.train], gap.y[gap.train])
    both = predict(s.target_, gap.Xs[:2000])
    # the source head still predicts the source property (the masked loss trained it on source rows)
    source_mae = np.abs(both[:, 0] - gap.ys[:2000]).mean()
    # source MAE / mean-predictor MAE with seeds 0/1/2: 0.499 / 0.448 / 0.484 (mean 0.477, sd 0.026)
    assert source_mae < 0.55 * np.abs(gap.ys[:2000] - gap.ys.mean()).mean()
    with pytest.raises(ValueError, match="X_source"):
        MultiTask().use_source(gap.source)


def test_latent_variable_tasks_differ(gap):
    s = LatentVariable(max_source_rows=4000, joint_config=JOINT, hidden=HIDDEN).use_source(gap.source, gap.Xs, gap.ys)
    s.adapt(gap.X[gap.train], gap.y[gap.train])
    as_source, as_target = s.predict_task(gap.X[gap.test], 0), s.predict_task(gap.X[gap.test], 1)
    assert not np.allclose(as_source, as_target)
    np.testing.assert_array_equal(as_target, s.predict(gap.X[gap.test]))


def test_ensemble_is_mean_of_members_and_output_floor(gap):
    members = [Delta(hidden=HIDDEN, target_config=target_config(epochs=5)), FrozenFeatures()]
    ens = Ensemble(members, output_floor=0.0).use_source(gap.source)
    ens.adapt(gap.X[gap.train], gap.y[gap.train])
    raw = np.mean([m.predict(gap.X[gap.test]) for m in ens.target_], axis=0)
    np.testing.assert_allclose(ens.predict(gap.X[gap.test]), np.maximum(raw, 0.0))
    assert (ens.predict(gap.X[gap.test]) >= 0).all()


def test_learning_curve_and_plots(gap, tmp_path):
    s = FrozenFeatures().use_source(gap.source)
    curve = learning_curve(s, gap.X, gap.y, sizes=(25, 100, None), n_repeats=3, seed=0)
    assert curve["sizes"][:2] == [25, 100] and curve["sizes"][2] == len(gap.y) - round(0.2 * len(gap.y))
    assert len(curve["runs"]) == 9
    # more data helps the ridge head on frozen features
    assert curve["mae"][2] < curve["mae"][0]
    png = learning_curve_plot({"frozen": curve}, str(tmp_path / "lc.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = parity_plot(gap.y[:50], gap.y[:50] + 0.1, str(tmp_path / "parity.png"), title="t", unit="eV")
    assert os.path.getsize(png) > 1000


def test_errors_before_pretraining(gap):
    with pytest.raises(RuntimeError, match="pretrain"):
        Delta().adapt(gap.X[:10], gap.y[:10])
    with pytest.raises(ValueError, match="NaN"):
        FrozenFeatures().use_source(gap.source).adapt(gap.X[:3], np.array([1.0, np.nan, 0.0]))
