"""Nothing on a load path unpickles: crafted files are refused with a clear error and nothing runs.

Covers the trainer checkpoint, ``matxfer.nn.save_model`` directories and saved transfer
strategies (every strategy round-trips to bit-identical predictions), on real data (a slice of
MP band gaps as the source, matbench expt_gap as the target).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import matxfer  # noqa: E402
from matxfer import ModelFormatError  # noqa: E402
from matxfer.nn import MLP, ArrayData, TrainConfig, Trainer, load_model, predict, save_model  # noqa: E402
from matxfer.transfer import (  # noqa: E402
    Delta,
    Ensemble,
    FineTune,
    FromScratch,
    FrozenFeatures,
    LatentVariable,
    MultiTask,
    pretrain_mlp,
)
from matxfer.transfer.io import load_strategy, save_strategy  # noqa: E402

from .conftest import shared  # noqa: E402


class _Payload:
    """Unpickling this object creates ``path`` (the proof that code ran)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_pickle_payload(target, marker):
    with open(target, "wb") as fh:
        pickle.dump({"model": _Payload(marker)}, fh)


@pytest.fixture(scope="module")
def data():
    src = pd.read_csv(shared("composition/dft/mp_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    src = src.iloc[:3000]
    tgt = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str})
    tgt = tgt.iloc[:300]
    Xs = matxfer.featurize(src.formula.tolist(), "magpie").values
    Xt = matxfer.featurize(tgt.formula.tolist(), "magpie").values
    ys = src.band_gap_pbe_eV.to_numpy(float)
    yt = tgt.band_gap_expt_eV.to_numpy(float)
    cfg = TrainConfig(epochs=3, batch_size=256, patience=None, val_fraction=0.0, device="cpu")
    source = pretrain_mlp(Xs, ys, hidden=(32, 16), config=cfg)
    return Xs, ys, Xt, yt, source


def test_checkpoint_refuses_pickle_tampered_and_truncated(tmp_path, data):
    Xs, ys, _, _, _ = data
    ckpt = tmp_path / "ckpt.safetensors"
    cfg = TrainConfig(epochs=2, batch_size=512, patience=None, val_fraction=0.0, checkpoint=str(ckpt), device="cpu")
    model = MLP(Xs.shape[1], (16,)).fit_scaling(Xs).fit_target_scaling(ys)
    Trainer(cfg).fit(model, ArrayData(Xs, ys))
    state = matxfer.nn.load_checkpoint(ckpt)
    assert state["epoch"] == 2 and "state" in state["optimizer"] and len(state["history"]) == 2

    marker = tmp_path / "pwned"
    write_pickle_payload(tmp_path / "evil.pt", marker)
    fresh = MLP(Xs.shape[1], (16,)).fit_scaling(Xs).fit_target_scaling(ys)
    with pytest.raises(ModelFormatError, match="pickle"):
        Trainer(cfg.replace(checkpoint=str(tmp_path / "evil.pt"))).fit(fresh, ArrayData(Xs, ys), resume=True)
    assert not marker.exists()
    # torch.save output (a zip with a pickle inside) is refused too
    torch.save({"model": _Payload(marker)}, tmp_path / "zip.pt")
    with pytest.raises(ModelFormatError, match="torch.save"):
        matxfer.nn.load_checkpoint(tmp_path / "zip.pt")
    assert not marker.exists()

    raw = bytearray(ckpt.read_bytes())
    raw[-5] ^= 0xFF  # one flipped bit in a tensor
    (tmp_path / "tampered").write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="sha256"):
        matxfer.nn.load_checkpoint(tmp_path / "tampered")
    (tmp_path / "truncated").write_bytes(ckpt.read_bytes()[: len(raw) // 2])
    with pytest.raises(ModelFormatError, match="safetensors"):
        matxfer.nn.load_checkpoint(tmp_path / "truncated")


def test_save_model_is_safetensors_and_refuses_pickles_and_unknown_classes(tmp_path, data):
    Xs, ys, _, _, source = data
    save_model(source, tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["model.json", "weights.safetensors"]
    np.testing.assert_array_equal(predict(load_model(tmp_path / "m"), Xs[:50]), predict(source, Xs[:50]))

    marker = tmp_path / "pwned"
    write_pickle_payload(tmp_path / "m" / "weights.safetensors", marker)
    with pytest.raises(ModelFormatError, match="pickle"):
        load_model(tmp_path / "m")
    assert not marker.exists()

    save_model(source, tmp_path / "m2")
    config = (tmp_path / "m2" / "model.json").read_text().replace('"class": "MLP"', '"class": "os.system"')
    (tmp_path / "m2" / "model.json").write_text(config)
    with pytest.raises(ModelFormatError, match="unknown model class"):
        load_model(tmp_path / "m2")


STRATEGY_CASES = {
    "scratch": lambda cfg: FromScratch(hidden=(16,), target_config=cfg),
    "frozen-ridge": lambda cfg: FrozenFeatures(head="ridge", target_config=cfg),
    "frozen-gbm": lambda cfg: FrozenFeatures(head="gbm", target_config=cfg),
    "frozen-mlp": lambda cfg: FrozenFeatures(head="mlp", head_hidden=(8,), target_config=cfg),
    "finetune": lambda cfg: FineTune(freeze_first=1, target_config=cfg),
    "delta-mlp": lambda cfg: Delta(target_config=cfg, output_floor=0.0),
    "delta-gbm": lambda cfg: Delta(head="gbm", target_config=cfg),
    "multitask": lambda cfg: MultiTask(max_source_rows=500, joint_config=cfg, target_config=cfg),
    "latent": lambda cfg: LatentVariable(max_source_rows=500, joint_config=cfg, target_config=cfg),
    "ensemble": lambda cfg: Ensemble([Delta(head="ridge", target_config=cfg), FrozenFeatures(target_config=cfg)]),
}


@pytest.mark.parametrize("case", sorted(STRATEGY_CASES))
def test_every_strategy_round_trips_bit_identically(tmp_path, data, case):
    Xs, ys, Xt, yt, source = data
    cfg = TrainConfig(epochs=2, batch_size=64, patience=None, val_fraction=0.0, device="cpu")
    strategy = STRATEGY_CASES[case](cfg).use_source(source, Xs, ys).adapt(Xt[:200], yt[:200])
    before = strategy.predict(Xt[200:])
    save_strategy(strategy, tmp_path / case)
    loaded = load_strategy(tmp_path / case)
    assert type(loaded) is type(strategy)
    np.testing.assert_array_equal(loaded.predict(Xt[200:]), before)
    # the loaded strategy can be adapted again (to new target rows) like the original
    if not strategy.needs_source_data:
        again = loaded.fresh().adapt(Xt[100:300], yt[100:300])
        assert np.isfinite(again.predict(Xt[:10])).all()


def test_strategy_files_are_verified(tmp_path, data):
    Xs, ys, Xt, yt, source = data
    cfg = TrainConfig(epochs=1, batch_size=64, patience=None, val_fraction=0.0, device="cpu")
    strategy = Delta(head="gbm", target_config=cfg).use_source(source).adapt(Xt[:150], yt[:150])
    directory = save_strategy(strategy, tmp_path / "s")
    head = directory / "head_0.skops"
    good = head.read_bytes()
    head.write_bytes(good[: len(good) // 3])
    with pytest.raises(ModelFormatError, match="sha256"):
        load_strategy(directory)
    head.write_bytes(good)
    marker = tmp_path / "pwned"
    write_pickle_payload(directory / "tensors.safetensors", marker)
    with pytest.raises(ModelFormatError, match="pickle"):
        load_strategy(directory)
    assert not marker.exists()

    # a head holding a type outside the trusted list is refused even with a correct hash
    from sklearn.ensemble import RandomForestRegressor

    forest = FrozenFeatures(head=RandomForestRegressor(n_estimators=3, random_state=0), target_config=cfg)
    forest.use_source(source).adapt(Xt[:150], yt[:150])
    d2 = save_strategy(forest, tmp_path / "forest")
    with pytest.raises(ModelFormatError, match="not trusted.*sklearn.tree._tree.Tree"):
        load_strategy(d2)
    loaded = load_strategy(d2, trusted=["sklearn.tree._tree.Tree"])
    np.testing.assert_array_equal(loaded.predict(Xt[150:200]), forest.predict(Xt[150:200]))

    meta = (directory / "strategy.json").read_text()
    (directory / "strategy.json").write_text(meta.replace("matxfer.strategy/1", "matxfer.strategy/99"))
    with pytest.raises(ModelFormatError, match="incompatible"):
        load_strategy(directory)
