"""Graph models on the core's Gaussian expansion, graph sources in the transfer strategies, and a graph
encoder on the structure side of CroMEL, on real structures (perov_5 val/test from CDVAE, JARVIS 2D).

The source is the shipped library CGCNN (perov_5 heat of formation, trained on the 6,830 rows outside
its composition hold-out); the targets below are drawn from its 742 hold-out structures only.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import matxfer  # noqa: E402
import matxfer.library as lib  # noqa: E402
from matxfer.graphs import build_graphs  # noqa: E402
from matxfer.library.structure import holdout_split  # noqa: E402
from matxfer.nn import CGCNN, GraphData, GraphRegressor, TrainConfig, load_model, predict, save_model  # noqa: E402
from matxfer.structures import read_structures  # noqa: E402
from matxfer.transfer import (  # noqa: E402
    CrossModality,
    Delta,
    FineTune,
    FrozenFeatures,
    MultiTask,
    load_strategy,
    save_strategy,
)

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PEROV = DATA / "structures" / "perov5_valtest_cdvae.jsonl"
JARVIS2D = DATA / "structures" / "jarvis_dft_2d_matminer.jsonl"
SOURCE = "perov5/heat_of_formation/crystal_graph/cgcnn"


@pytest.fixture(scope="module")
def perov():
    if not PEROV.exists():
        pytest.skip("perov_5 structures not found")
    batch = read_structures(PEROV)
    with open(PEROV) as fh:
        records = [json.loads(line) for line in fh]
    train, hold = holdout_split(batch)
    return {
        "batch": batch,
        "train": train,  # rows the library source was trained on
        "hold": hold,  # rows it never saw
        "heat": np.array([r["heat_ref"] for r in records]),
        "gap": np.array([r["dir_gap_eV"] for r in records]),
        "heat_all": np.array([r["heat_all"] for r in records]),
        "formulas": ["".join(f"{el}{c}" for el, c in sorted(Counter(r["species"]).items())) for r in records],
    }


@pytest.fixture(scope="module")
def source():
    return lib.load(SOURCE)


def _count(calls, *_):
    calls.append(1)


def _tiny(epochs=8, **kw):
    return TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, patience=None, val_fraction=0.1, device="cpu", **kw)


# -- 1. the core's RBF feeds the network ---------------------------------------------------------------


def test_core_rbf_gives_the_same_predictions_without_a_torch_expansion(perov, source):
    net = source.to_torch()
    sets = [perov["batch"].select(range(150))]
    if JARVIS2D.exists():  # larger cells with vacuum as well
        sets.append(read_structures(JARVIS2D).select(range(40)))
    for structures in sets:
        g = build_graphs(structures, 8.0, max_neighbors=12, rbf=net.graph_rbf(), rbf_dtype="float32")
        with_rbf = GraphData.from_graphs(g)
        without = GraphData(g.numbers, g.edge_index, g.distances, g.graph_ptr)
        assert with_rbf.rbf is not None and without.rbf is None
        expected = predict(net, without)
        calls: list = []
        hook = net.expansion.register_forward_hook(partial(_count, calls))
        try:
            got = predict(net, with_rbf)
            assert not calls, "the network expanded the distances although the batch carries the core's RBF"
            predict(net, without)
            assert calls
        finally:
            hook.remove()
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
        np.testing.assert_allclose(predict(net, with_rbf, method="encode"), predict(net, without, method="encode"),
                                   rtol=0, atol=2e-5)
    # an expansion of the wrong size is refused, not silently broadcast
    wrong = build_graphs(sets[0].select(range(5)), 8.0, max_neighbors=12, rbf=20)
    with pytest.raises(ValueError, match="rbf must have shape"):
        predict(net, GraphData.from_graphs(wrong))


def test_graph_batches_keep_the_rbf_rows_of_their_edges(perov, source):
    model = GraphRegressor.from_cgcnn(source.to_torch(), source.y_mean, source.y_std)
    data = model.graphs(perov["batch"].select(range(60)))
    full = predict(model, data)
    a, b = np.arange(0, 60, 3), np.setdiff1d(np.arange(60), np.arange(0, 60, 3))
    joined = GraphData.concat([data.subset(a), data.subset(b)])
    np.testing.assert_allclose(predict(model, joined), np.concatenate([full[a], full[b]]), atol=1e-6)
    # the wrapper reproduces the library model's own predictions (card units)
    np.testing.assert_allclose(full, source.predict(perov["batch"].select(range(60))), atol=2e-5)
    d = Path(pytest.importorskip("tempfile").mkdtemp())
    save_model(model, d)
    again = load_model(d)
    np.testing.assert_array_equal(predict(again, data), full)
    assert again.graph_options == model.graph_options


# -- 2. graph sources in the strategies ---------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: FineTune(target_config=_tiny(), freeze_first=1),
    lambda: FrozenFeatures(head="ridge"),
    lambda: FrozenFeatures(head="gbm", layers="last"),
    lambda: Delta(target_config=_tiny()),
    lambda: Delta(head="ridge"),
    lambda: MultiTask(joint_config=_tiny(epochs=3), max_source_rows=150),
], ids=["finetune", "frozen_ridge", "frozen_gbm", "delta_net", "delta_ridge", "multitask"])
def test_graph_source_strategies_round_trip_bit_identical(perov, source, make, tmp_path):
    hold = perov["hold"]
    tr, te = hold[:120], hold[120:170]
    batch, y = perov["batch"], perov["heat"] + 0.3 * perov["gap"]  # a related target property
    s = make()
    src = perov["train"][:300]
    s.use_source(source, batch.select(src), perov["heat"][src]) if isinstance(s, MultiTask) else s.use_source(source)
    assert s.graph_source
    s.adapt(batch.select(tr), y[tr])
    pred = s.predict(batch.select(te))
    assert pred.shape == (len(te),) and np.isfinite(pred).all()
    save_strategy(s, tmp_path / "s")
    assert {p.name for p in (tmp_path / "s").iterdir()} <= {"strategy.json", "tensors.safetensors", "head_0.skops"}
    loaded = load_strategy(tmp_path / "s")
    np.testing.assert_array_equal(loaded.predict(batch.select(te)), pred)
    # the source network was not touched by adapting
    assert torch.equal(s.source_model_.net.head.weight, source.to_torch().head.weight)
    with pytest.raises(TypeError, match="graph source"):
        s.predict(np.zeros((3, 10)))


def test_finetune_freezes_graph_layers_from_the_input(perov, source):
    hold = perov["hold"]
    s = FineTune(target_config=_tiny(epochs=3), freeze_first=4).use_source(source)  # embedding + 3 convolutions
    s.adapt(perov["batch"].select(hold[:80]), perov["gap"][hold[:80]])
    before, after = source.to_torch(), s.target_.net
    torch.testing.assert_close(after.convs[2].linear.weight, before.convs[2].linear.weight)
    assert not torch.equal(after.readout[0].weight, before.readout[0].weight)


# Structure -> structure transfer on a small real target: 100 perovskites the source never saw (its
# composition hold-out), labelled with CMR's heat_all (heat of formation against another reference set;
# the source learned heat_ref). Transfer: Delta with a ridge head on the frozen crystal embedding; scratch:
# the source architecture freshly initialised, 20 epochs. Seeds 0, 1, 2 (measured on this data, 30
# scratch epochs): Delta 0.141 / 0.139 / 0.157, scratch 0.528 / 0.459 / 0.491 (eV per cell), the mean
# predictor 0.60 / 0.56 / 0.56; ratio ~0.3. Thresholds: mean ratio < 0.5, mean transfer MAE < 0.2.
RATIO_THRESHOLD, MAE_THRESHOLD = 0.5, 0.2


def test_structure_transfer_beats_scratch_cgcnn_on_a_small_real_target(perov, source):
    hold, batch = perov["hold"], perov["batch"]
    y = perov["heat_all"]
    ratios, maes = [], []
    for seed in (0, 1, 2):
        perm = np.random.default_rng(seed).permutation(hold)
        tr, te = perm[:100], perm[100:400]
        transfer = Delta(head="ridge", seed=seed).use_source(source).adapt(batch.select(tr), y[tr])
        mae_transfer = np.mean(np.abs(transfer.predict(batch.select(te)) - y[te]))
        torch.manual_seed(seed)
        fresh = GraphRegressor(source.to_torch().init_args)
        scratch = FineTune(lr=2e-3, refit_output_scaling=True, seed=seed,
                           target_config=_tiny(epochs=20)).use_source(fresh).adapt(batch.select(tr), y[tr])
        mae_scratch = np.mean(np.abs(scratch.predict(batch.select(te)) - y[te]))
        ratios.append(mae_transfer / mae_scratch)
        maes.append(mae_transfer)
    assert np.mean(ratios) < RATIO_THRESHOLD, ratios
    assert np.mean(maes) < MAE_THRESHOLD, maes


def test_finetune_classifies_with_a_graph_source(perov, source):
    # A class from a real property: heat of formation below the median of the 742 hold-out perovskites
    # (structures the source never saw). The copied network gets a zero logit layer. Measured on this
    # split, seeds 0-2: log loss 0.299-0.307, ROC-AUC 0.955-0.957; with shuffled labels log loss
    # 0.677-0.765 (the ROC-AUC of a shuffled-label model swings between 0.07 and 0.96: the trunk's
    # features follow the heat, and noise picks the sign, so log loss is the check).
    from matxfer.transfer import classification_metrics

    hold, batch, heat = perov["hold"], perov["batch"], perov["heat"]
    label = (heat < np.median(heat[hold])).astype(int)
    perm = np.random.default_rng(0).permutation(hold)
    tr, te = perm[:400], perm[400:]
    graphs = FineTune().use_source(source)._inputs(batch)
    metrics = {}
    for name, y_train in (("real", label[tr]), ("shuffled", np.random.default_rng(0).permutation(label[tr]))):
        tuned = FineTune(task="classification", seed=0, target_config=_tiny(epochs=8)).use_source(source)
        tuned.adapt(graphs.subset(tr), y_train)
        metrics[name] = classification_metrics(label[te], tuned.predict_proba(graphs.subset(te)))
    assert metrics["real"]["log_loss"] < 0.45 and metrics["real"]["roc_auc"] > 0.9, metrics
    assert metrics["shuffled"]["log_loss"] > 0.6, metrics


# -- 4. a message-passing encoder on CroMEL's structure side ---------------------------------------------


def test_cromel_with_the_library_graph_encoder_beats_an_untrained_one(perov, source):
    """Align composition embeddings of 1,500 source perovskites onto the library CGCNN's crystal embeddings
    (graphs built from the structures by the core), then predict the heat of formation of 300 other,
    formula-only perovskites from 150 labelled ones with a ridge head; an untrained encoder of the same
    architecture is the control. Measured (seed 0): 0.449 vs 0.518 eV per cell (ratio 0.87; with 2,000
    source rows and 40 alignment epochs 0.44 vs 0.50; with 400 rows 0.487 vs 0.504, too close to test);
    the mean predictor is at ~0.56."""
    train, hold = perov["train"][:1500], perov["hold"]
    formulas = perov["formulas"]
    X = np.asarray(matxfer.featurize([formulas[i] for i in np.concatenate([train, hold])], preset="magpie").values)
    Xs, Xt = X[: len(train)], X[len(train):]
    y_t = perov["heat"][hold]
    maes = {}
    for name in ("library", "untrained"):
        torch.manual_seed(0)
        enc = source if name == "library" else GraphRegressor(source.to_torch().init_args)
        s = CrossModality(alignment="paired", embedding_dim=64, comp_hidden=(64,), align_epochs=30, align_batch_size=64,
                          head="ridge", device="cpu", seed=0)
        s.pretrain(Xs, perov["heat"][train], graphs=perov["batch"].select(train), structure_encoder=enc)
        assert s.alignment_history_[-1]["align"] < 0.5 * s.alignment_history_[0]["align"]
        s.adapt(Xt[:150], y_t[:150])
        maes[name] = float(np.mean(np.abs(s.predict(Xt[150:450]) - y_t[150:450])))
    assert maes["library"] < 0.93 * maes["untrained"], maes
    with pytest.raises(TypeError, match="structure_encoder"):
        CrossModality().pretrain(Xs, perov["heat"][train], graphs=perov["batch"].select(train), structure_encoder="x")


def test_pretrain_on_structures_trains_a_graph_source(perov):
    rows = perov["train"][:200]
    s = FrozenFeatures(source_config=_tiny(epochs=3)).pretrain(perov["batch"].select(rows), perov["heat"][rows])
    assert isinstance(s.source_model_, GraphRegressor) and s.graph_source
    assert isinstance(s.source_model_.net, CGCNN)
    s.adapt(perov["batch"].select(perov["hold"][:50]), perov["gap"][perov["hold"][:50]])
    assert np.isfinite(s.predict(perov["batch"].select(perov["hold"][50:60]))).all()
