"""CGCNN with bond angles from the core's triplets (``CGCNN(angle_cutoff=...)``), on real carbon_24
structures (CDVAE's carbon polymorphs: one element, so only geometry tells them apart).

The accuracy comparison with the plain CGCNN is a benchmark (benches/graph_angles.py); these tests
check that the triplets reach the network intact through batching, subsets, concatenation, library
files and the transfer strategies, and that a network with angles refuses graphs without them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import matxfer.library as lib  # noqa: E402
from matxfer.graphs import build_graphs  # noqa: E402
from matxfer.library.structure import build_structure_model  # noqa: E402
from matxfer.nn import CGCNN, GraphData, GraphRegressor, TrainConfig, load_model, predict, save_model  # noqa: E402
from matxfer.nn.graph_models import as_graph_model  # noqa: E402
from matxfer.structures import read_structures  # noqa: E402
from matxfer.transfer import FineTune, FrozenFeatures, load_strategy, save_strategy  # noqa: E402

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CARBON = DATA / "structures" / "carbon24_valtest_cdvae.jsonl"


@pytest.fixture(scope="module")
def carbon():
    if not CARBON.exists():
        pytest.skip(f"carbon_24 structures not found at {CARBON}")
    batch = read_structures(CARBON)
    with open(CARBON) as fh:
        energy = np.array([json.loads(line)["energy_per_atom_eV"] for line in fh])
    return batch, energy


def _angle_model(seed=0, **kw):
    torch.manual_seed(seed)
    return GraphRegressor(dict(node_dim=24, n_conv=2, hidden=(24,), norm="layer", angle_cutoff=4.0, **kw)).eval()


def test_core_triplets_are_the_angles_of_their_edges(carbon):
    """The core's cosines equal those of its own edge vectors, and both edges of a triplet share the centre."""
    batch, _ = carbon
    g = build_graphs(batch.select(range(30)), 8.0, max_neighbors=12, three_body_cutoff=4.0, vectors=True)
    t = g.triplet_index
    assert t.shape[1] == len(g.triplet_cos) > 0
    assert np.array_equal(g.edge_index[0, t[0]], g.edge_index[0, t[1]]) and np.all(t[0] != t[1])
    v1, v2 = g.vectors[t[0]], g.vectors[t[1]]
    cos = np.sum(v1 * v2, axis=1) / (np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1))
    np.testing.assert_allclose(g.triplet_cos, np.clip(cos, -1, 1), atol=1e-12)
    assert np.all(g.distances[t[0]] <= 4.0) and np.all(g.distances[t[1]] <= 4.0)


def test_angle_batches_renumber_triplets_to_their_edges(carbon):
    """Any batch, subset or concatenation of the graphs gives each structure the same prediction as the
    whole set, and each batch's triplets join edges of one centre (so renumbering is right)."""
    batch, _ = carbon
    model = _angle_model()
    data = model.graphs(batch.select(range(48)))
    assert data.triplet_index is not None and data.triplet_ptr is not None
    full = predict(model, data, batch_size=48)
    for batch_size in (1, 5, 17):
        np.testing.assert_allclose(predict(model, data, batch_size=batch_size), full, rtol=0, atol=2e-5)
    index = torch.tensor([40, 3, 17, 3, 0])
    inputs, _, _ = data.batch(index)
    assert len(inputs) == 8 and inputs[5] is not None
    edge_index, trip = inputs[1], inputs[6]
    assert torch.equal(edge_index[0, trip[0]], edge_index[0, trip[1]])
    expected_t = int(sum(int(data.triplet_ptr[i + 1] - data.triplet_ptr[i]) for i in index))
    assert trip.shape == (2, expected_t)
    with torch.no_grad():
        got = model(*inputs).numpy()[:, 0]
    np.testing.assert_allclose(got, full[index.numpy()], rtol=0, atol=2e-5)
    a, b = np.arange(0, 48, 3), np.setdiff1d(np.arange(48), np.arange(0, 48, 3))
    joined = GraphData.concat([data.subset(a), data.subset(b)])
    np.testing.assert_allclose(predict(model, joined), np.concatenate([full[a], full[b]]), rtol=0, atol=2e-5)
    # once training has opened the angle path (its gains start at zero), the network reads the
    # angles: the same graphs with the cosines reversed give other predictions
    with torch.no_grad():
        for conv in model.net.convs:
            conv.angle.norm_edges.weight.fill_(1.0)
    full = predict(model, data)
    flipped = GraphData.from_graphs(build_graphs(batch.select(range(48)), 8.0, max_neighbors=12, three_body_cutoff=4.0,
                                                 rbf=model.net.graph_rbf(), rbf_dtype="float32"))
    assert flipped.triplet_cos is not None
    flipped.triplet_cos = -flipped.triplet_cos
    assert np.max(np.abs(predict(model, flipped) - full)) > 1e-4


def test_untrained_angle_network_computes_the_plain_cgcnn(carbon):
    """The angle updates start with zero gain: before training, a network with angles gives exactly
    the plain CGCNN's predictions for the same weights, and the cosines do not matter yet."""
    batch, _ = carbon
    some = batch.select(range(40))
    angled = _angle_model(seed=3)
    torch.manual_seed(3)
    plain = GraphRegressor(dict(node_dim=24, n_conv=2, hidden=(24,), norm="layer")).eval()
    shared = {k: v for k, v in angled.net.state_dict().items() if ".angle." not in k}
    assert len(shared) == len(plain.net.state_dict())
    plain.net.load_state_dict(shared)
    with_angles = angled.graphs(some)
    expected = predict(plain, plain.graphs(some))
    np.testing.assert_array_equal(predict(angled, with_angles), expected)
    assert with_angles.triplet_cos is not None
    with_angles.triplet_cos = -with_angles.triplet_cos
    np.testing.assert_array_equal(predict(angled, with_angles), expected)
    # and a network that learned nothing about angles after a reset is again the plain one
    with torch.no_grad():
        for conv in angled.net.convs:
            conv.angle.norm_edges.weight.fill_(0.5)
    angled.net.reset_parameters()
    assert all(int(torch.count_nonzero(conv.angle.norm_edges.weight.detach())) == 0 for conv in angled.net.convs)


def test_angle_network_refuses_graphs_without_triplets_and_bad_settings(carbon):
    batch, _ = carbon
    model = _angle_model()
    plain = GraphData.from_graphs(build_graphs(batch.select(range(4)), 8.0, max_neighbors=12))
    with pytest.raises(ValueError, match="three_body_cutoff=4"):
        predict(model, plain)
    with pytest.raises(ValueError, match="angle_cutoff"):
        CGCNN(cutoff=8.0, angle_cutoff=9.0)
    with pytest.raises(ValueError, match="angle_cutoff"):
        CGCNN(angle_cutoff=float("nan"))
    with pytest.raises(ValueError, match="n_angle"):
        CGCNN(angle_cutoff=3.0, n_angle=1)
    g = build_graphs(batch.select(range(4)), 8.0, max_neighbors=12, three_body_cutoff=4.0)
    with pytest.raises(ValueError, match="triplet_index"):
        GraphData(g.numbers, g.edge_index, g.distances, g.graph_ptr, triplet_index=g.triplet_index)
    bad = g.triplet_index.copy()
    bad[0, 0] = len(g.distances)
    with pytest.raises(ValueError, match="outside"):
        GraphData(g.numbers, g.edge_index, g.distances, g.graph_ptr, triplet_index=bad, triplet_cos=g.triplet_cos)
    # a network without angles takes graphs with triplets and ignores them
    torch.manual_seed(0)
    net = CGCNN(node_dim=16, n_conv=1, hidden=(16,)).eval()
    with_t = GraphData.from_graphs(g)
    np.testing.assert_array_equal(predict(net, with_t), predict(net, GraphData(g.numbers, g.edge_index, g.distances, g.graph_ptr)))
    assert "angle_cutoff" not in net.init_args  # earlier cards and files keep their bytes


def test_angle_cgcnn_library_model_reloads_bit_identically_and_transfers(carbon, tmp_path):
    """An angle CGCNN trained by the library builder: the card records the angles, the file reloads
    and predicts the same bits (building triplets itself), and it serves as a graph source."""
    batch, energy = carbon
    directory = build_structure_model(CARBON, "energy_per_atom_eV", name="carbon/e/crystal_graph/cgcnn-angles",
                                      node_dim=16, n_conv=2, hidden=(16,), epochs=1, max_train_rows=96,
                                      split_by="structure", norm="layer", angle_cutoff=4.0, library=tmp_path)
    card = json.loads((Path(directory) / "card.json").read_text())
    assert card["architecture"]["init_args"]["angle_cutoff"] == 4.0 and card["architecture"]["init_args"]["n_angle"] == 8
    model = lib.load("carbon/e/crystal_graph/cgcnn-angles", library=tmp_path)
    assert model.network.convs[0].angle is not None
    some = batch.select(range(40))
    a = model.predict(some, chunk_size=7)
    np.testing.assert_array_equal(a, lib.load("carbon/e/crystal_graph/cgcnn-angles", library=tmp_path).predict(some, chunk_size=7))
    assert np.all(np.isfinite(a))
    wrapped = as_graph_model(model)
    np.testing.assert_allclose(predict(wrapped, wrapped.graphs(some)), a, rtol=1e-6, atol=0)  # float32 at -154 eV
    save_model(wrapped, tmp_path / "m")
    np.testing.assert_array_equal(predict(load_model(tmp_path / "m"), wrapped.graphs(some)), predict(wrapped, wrapped.graphs(some)))
    # graph-source strategies: the angle updates are frozen with their convolution and survive a round trip
    rows, test = np.arange(100, 160), np.arange(160, 180)
    for s in (FineTune(target_config=TrainConfig(epochs=2, batch_size=16, lr=1e-3, patience=None, val_fraction=0.1),
                       freeze_first=2), FrozenFeatures(head="ridge")):
        s.use_source(model).adapt(batch.select(rows), energy[rows])
        pred = s.predict(batch.select(test))
        assert pred.shape == (len(test),) and np.isfinite(pred).all()
        save_strategy(s, tmp_path / type(s).__name__)
        np.testing.assert_array_equal(load_strategy(tmp_path / type(s).__name__).predict(batch.select(test)), pred)
        if isinstance(s, FineTune):
            before, after = model.network.convs[0].angle, s.target_.net.convs[0].angle
            torch.testing.assert_close(after.linear.weight, before.linear.weight)
            assert not torch.equal(s.target_.net.readout[0].weight, model.network.readout[0].weight)
