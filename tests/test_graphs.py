"""Batched graphs: selections, RBF, triplets, zero-copy hand-off."""

import numpy as np
import pytest

from matxfer.graphs import build_graphs
from matxfer.structures import StructureError, neighbor_list, read_structures

from .conftest import STRUCTURES


@pytest.fixture(scope="module")
def batch():
    return read_structures(STRUCTURES / "mp_bulk_moduli100_megnet.jsonl").select(range(0, 100, 5))


def test_radius_graph_layout(batch):
    g = build_graphs(batch, 5.0, vectors=True)
    nl = neighbor_list(batch, 5.0)
    assert g.n_edges == len(nl) and g.edge_index.shape == (2, g.n_edges)
    assert g.edge_index.dtype == np.int64 and g.shifts.dtype == np.int32
    np.testing.assert_array_equal(g.graph_ptr, batch.ptr)
    np.testing.assert_array_equal(g.edge_ptr, nl.edge_ptr)
    np.testing.assert_array_equal(g.node_graph, np.repeat(np.arange(len(batch)), batch.n_sites))
    offsets = np.repeat(batch.ptr[:-1], np.diff(nl.edge_ptr))
    np.testing.assert_array_equal(g.edge_index[0], nl.i + offsets)
    np.testing.assert_array_equal(g.edge_index[1], nl.j + offsets)
    # Edges never cross graphs.
    assert (g.node_graph[g.edge_index[0]] == g.node_graph[g.edge_index[1]]).all()
    owner = g.node_graph[g.edge_index[0]]
    cart = batch.cart_coords()
    expect = cart[g.edge_index[1]] - cart[g.edge_index[0]] + np.einsum("ek,ekd->ed", g.shifts, batch.lattices[owner])
    np.testing.assert_allclose(g.vectors, expect, atol=1e-9)


def test_cgcnn_cap_keeps_nearest(batch):
    g = build_graphs(batch, 8.0, max_neighbors=12)
    full = build_graphs(batch, 8.0)
    counts = np.bincount(g.edge_index[0], minlength=g.n_nodes)
    full_counts = np.bincount(full.edge_index[0], minlength=full.n_nodes)
    np.testing.assert_array_equal(counts, np.minimum(full_counts, 12))
    for node in range(0, g.n_nodes, 7):
        mine = np.sort(g.distances[g.edge_index[0] == node])
        ref = np.sort(full.distances[full.edge_index[0] == node])[: len(mine)]
        np.testing.assert_allclose(mine, ref)


def test_knn_keeps_ties_and_policy():
    cubic = {"lattice": np.eye(3) * 3.0, "species": ["Po"], "frac_coords": [[0, 0, 0]]}
    g = build_graphs([cubic], 2.0, k=8)
    # Simple cubic: 6 at a, then 12 at a*sqrt(2); k=8 falls inside the second shell -> 18 kept.
    assert g.n_edges == 18
    capped = build_graphs([cubic], 5.0, max_neighbors=8)
    assert capped.n_edges == 8
    with pytest.raises(StructureError, match="atom 0 has 6 neighbors"):
        build_graphs([cubic], 3.5, max_neighbors=8, few_neighbors="error")
    assert build_graphs([cubic], 3.5, max_neighbors=8).n_edges == 6


def test_rbf_and_triplets(batch):
    g = build_graphs(batch, 6.0, rbf=50, three_body_cutoff=4.0, vectors=True)
    mu = np.linspace(0, 6.0, 50)
    expect = np.exp(-(((g.distances[:, None] - mu) / (mu[1] - mu[0])) ** 2))
    np.testing.assert_allclose(g.rbf, expect, rtol=1e-10, atol=1e-300)
    e1, e2 = g.triplet_index
    assert (g.edge_index[0, e1] == g.edge_index[0, e2]).all() and (e1 != e2).all()
    assert (g.distances[e1] <= 4.0).all() and (g.distances[e2] <= 4.0).all()
    v1, v2 = g.vectors[e1], g.vectors[e2]
    np.testing.assert_allclose(g.triplet_cos, np.einsum("td,td->t", v1, v2) / (g.distances[e1] * g.distances[e2]), atol=1e-12)
    # Count: for each center with n short edges, n (n - 1) ordered pairs.
    short = np.bincount(g.edge_index[0][g.distances <= 4.0], minlength=g.n_nodes)
    assert len(e1) == int((short * (short - 1)).sum())


def test_to_torch_shares_memory(batch):
    torch = pytest.importorskip("torch")
    g = build_graphs(batch, 5.0, rbf=16)
    t = g.to_torch()
    assert t["edge_index"].dtype == torch.int64 and t["rbf"].shape == (g.n_edges, 16)
    assert t["distances"].data_ptr() == g.distances.ctypes.data


def test_max_edges_names_structure(batch):
    with pytest.raises(StructureError, match=r"structure 0 .*max_edges"):
        build_graphs(batch, 8.0, max_edges=50)


def test_rbf_float32(batch):
    g64 = build_graphs(batch, 5.0, rbf=32)
    g32 = build_graphs(batch, 5.0, rbf=32, rbf_dtype="float32")
    assert g32.rbf.dtype == np.float32
    np.testing.assert_allclose(g32.rbf, g64.rbf.astype(np.float32), rtol=1e-6, atol=1e-30)
