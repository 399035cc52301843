"""Structure-modality library models (CGCNN on crystal graphs) on real perov_5 structures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import matxfer.library as lib  # noqa: E402
from matxfer import InvalidArgumentError, ModelFormatError, StructureError  # noqa: E402
from matxfer.library.structure import StructureLibraryModel, build_structure_model, holdout_split  # noqa: E402
from matxfer.structures import read_structures  # noqa: E402

DATA = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PEROV = DATA / "structures" / "perov5_valtest_cdvae.jsonl"
NAME = "perov5/heat_of_formation/crystal_graph/cgcnn-test"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not PEROV.exists():
        pytest.skip(f"shared data not found at {PEROV}")
    root = tmp_path_factory.mktemp("structlib")
    directory = build_structure_model(
        PEROV, "heat_ref", name=NAME, property_name="heat_of_formation", units="eV per 5-atom cell",
        source={"dataset": "perov5"}, node_dim=32, n_conv=2, hidden=(32,), epochs=10, batch_size=32, lr=5e-3,
        max_train_rows=500, library=root,
    )
    return root, directory


@pytest.fixture(scope="module")
def heldout():
    batch = read_structures(PEROV)
    with open(PEROV) as fh:
        y = np.array([json.loads(line)["heat_ref"] for line in fh], float)
    _, test = holdout_split(batch)
    test = test[:300]
    return batch.select(test), y[test]


def test_build_records_card_and_beats_mean_predictor(built, heldout):
    root, directory = built
    model = lib.load(NAME, library=root)
    assert isinstance(model, StructureLibraryModel)
    card = model.card
    assert card["modality"] == "structure" and card["class"] == "CGCNN"
    assert card["descriptor"]["cutoff"] == 8.0 and card["descriptor"]["max_neighbors"] == 12
    assert card["descriptor"]["rbf"] == {"start": 0.0, "stop": 8.0, "n": 40}
    assert card["architecture"]["init_args"]["node_dim"] == 32
    assert card["source"]["n_rows_train"] == 500 and card["source"]["n_rows_test"] > 500
    assert card["metrics"]["mae"] < 0.8 * card["metrics"]["mean_predictor_mae"], card["metrics"]
    batch, y = heldout
    pred = model.predict(batch)
    mae, base = np.abs(pred - y).mean(), np.abs(y - card["architecture"]["target_scaling"]["mean"]).mean()
    assert mae < 0.8 * base, (mae, base)
    emb = model.transform(batch.select(range(7)))
    assert emb.shape == (7, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()


def test_round_trip_is_bit_identical_and_chunking_keeps_order(built, heldout, tmp_path):
    root, directory = built
    batch, _ = heldout
    model = lib.load(NAME, library=root)
    again = lib.load(str(directory))
    a, b = model.predict(batch), again.predict(batch)
    assert np.array_equal(a, b)
    small = model.predict(batch, chunk_size=37)
    np.testing.assert_allclose(small, a, rtol=1e-5, atol=1e-5)
    one = model.predict(batch.select([5]))
    np.testing.assert_allclose(one, a[5:6], rtol=1e-5, atol=1e-5)
    assert model.predict(batch.select([])).shape == (0,)


def test_search_finds_structure_models(built):
    root, _ = built
    found = lib.search(modality="structure", library=root)
    assert found["name"].tolist() == [NAME]
    assert found["arch"].iloc[0] == "cgcnn" and found["mae"].iloc[0] > 0
    assert lib.search(modality="composition", library=root).empty


def test_tampered_or_mismatched_model_is_refused(built, tmp_path):
    import shutil

    root, directory = built
    copy = tmp_path / "m"
    shutil.copytree(directory, copy)
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="sha256"):
        lib.load(str(copy))
    shutil.copy(directory / "weights.safetensors", weights)
    card = json.loads((copy / "card.json").read_text())
    card["architecture"]["init_args"]["node_dim"] = 16
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match="shapes"):
        lib.load(str(copy))
    card["architecture"]["init_args"]["node_dim"] = 32
    card["class"] = "MLP"
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match="class 'CGCNN'"):
        lib.load(str(copy))


def test_bad_structure_is_named_by_its_index(built, heldout):
    root, _ = built
    batch, _ = heldout
    model = lib.load(NAME, library=root)
    sub = batch.select(range(6))
    sub.frac_coords[sub.ptr[4] + 1] = sub.frac_coords[sub.ptr[4]]  # two atoms on one site in structure 4
    with pytest.raises(StructureError, match="structure 4"):
        model.predict(sub, chunk_size=3)


def test_loading_without_torch_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import matxfer.library as lib\n"
        "try:\n"
        "    lib.load('perov5/heat_of_formation/crystal_graph/cgcnn', library=lib.shipped_dir())\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ})
    assert out.stdout.strip() == 'structure library models need PyTorch: pip install "matxfer[torch]"', out.stderr


def test_library_build_trains_structure_sources_and_resumes(tmp_path):
    """`matxfer.library.build` builds the structure sources of STRUCTURE_TASKS through the same
    resumable, recipe-hashed path as the composition sources (a tiny CGCNN on real JARVIS 2D data)."""
    from matxfer.library.structure import STRUCTURE_TASKS, StructureBuildConfig

    if not (DATA / "structures" / "jarvis_dft_2d_matminer.jsonl").exists():
        pytest.skip("shared data not found")
    assert {t.key for t in STRUCTURE_TASKS} >= {"perov5/heat_of_formation", "jarvis_2d/exfoliation_energy"}
    config = StructureBuildConfig(node_dim=16, n_conv=1, hidden=(16,), epochs=2)
    kw = dict(out=tmp_path, data_dir=DATA, tasks=["jarvis_2d/exfoliation_energy"], seeds=(0,), structure_config=config,
              n_threads=1, progress=False)
    assert lib.build(modalities=("composition",), **kw) == []
    names = lib.build(**kw)
    assert names == ["jarvis_2d/exfoliation_energy/crystal_graph/cgcnn"]
    card = lib.card(names[0], library=tmp_path)
    assert card["modality"] == "structure" and card["source"]["file"] == "structures/jarvis_dft_2d_matminer.jsonl"
    assert card["build"]["config"]["epochs"] == 2 and len(card["build"]["recipe_sha256"]) == 64
    assert card["source"]["n_rows_train"] + card["source"]["n_rows_test"] + card["source"]["n_rows_missing_target"] == 636
    weights = (tmp_path / names[0] / "weights.safetensors").read_bytes()
    assert lib.build(**kw) == names  # resumed: the same recipe is not trained again
    assert len((tmp_path / "build_log.jsonl").read_text().splitlines()) == 1
    assert (tmp_path / names[0] / "weights.safetensors").read_bytes() == weights
    with pytest.raises(InvalidArgumentError, match="unknown modalities"):
        lib.build(modalities=("molecule",), **kw)


def test_scan_on_a_structure_target_ranks_the_same_property_source_first(built, heldout, tmp_path):
    """A structure target is scanned against structure sources: on held-out perov_5 heats of
    formation the perov_5 heat source must beat an unrelated one (JARVIS 2D exfoliation energy)
    and the no-source baselines on the same composition descriptors."""
    from matxfer.library.scan import scan

    root, _ = built
    build_structure_model(DATA / "structures" / "jarvis_dft_2d_matminer.jsonl", "exfoliation_energy_meV_per_atom",
                          name="jarvis_2d/exfoliation_energy/crystal_graph/cgcnn-test", node_dim=32, n_conv=2, hidden=(32,),
                          epochs=3, library=tmp_path)
    batch, y = heldout
    result = scan(batch, y, library=[root, tmp_path], strategies=("frozen-ridge",), cv=3, baselines=("ridge",), n_jobs=1)
    table = result.table.set_index("name")
    same, other = table.loc[NAME, "mae"], table.loc["jarvis_2d/exfoliation_energy/crystal_graph/cgcnn-test", "mae"]
    assert same < 0.7 * other, table
    assert same < table.loc["ridge on magpie_full (no source)", "mae"], table
    assert all(NAME in s for s in result.selected), result.selected
    with pytest.raises(ValueError, match="not structure models"):
        scan(batch, y, library=[root, lib.shipped_dir()], models=[NAME, "mp_gap/band_gap/magpie_full/mlp"],
             cv=3, baselines=())


def test_structure_holdout_for_one_composition_sets_and_target_range(tmp_path):
    """carbon_24 holds one composition: the composition hold-out leaves no test row, and the build
    says so; the structure hold-out makes a ~10 % test set that does not depend on row order. Rows
    outside a target range are left out and counted in the card (MP eps_electronic: 3 rows above 100)."""
    carbon_path = DATA / "structures" / "carbon24_valtest_cdvae.jsonl"
    if not carbon_path.exists():
        pytest.skip(f"shared data not found at {carbon_path}")
    carbon = read_structures(carbon_path).select(range(400))
    train, test = holdout_split(carbon, 0.1)
    assert len(test) == 0 and len(train) == 400
    train, test = holdout_split(carbon, 0.1, by="structure")
    assert 20 <= len(test) <= 60 and len(train) + len(test) == 400
    order = np.arange(400)[::-1]
    _, test_reversed = holdout_split(carbon.select(order), 0.1, by="structure")
    assert sorted(order[test_reversed].tolist()) == test.tolist()
    with pytest.raises(InvalidArgumentError, match="by must be"):
        holdout_split(carbon, 0.1, by="formula")
    with pytest.raises(InvalidArgumentError, match="split_by='structure'"):
        build_structure_model(carbon_path, "energy_per_atom_eV", name="carbon/e/crystal_graph/cgcnn-test", library=tmp_path)
    with pytest.raises(InvalidArgumentError, match="patience"):
        build_structure_model(PEROV, "heat_ref", name="x/y/crystal_graph/cgcnn-test", patience=0, library=tmp_path)
    with pytest.raises(InvalidArgumentError, match="low < high"):
        build_structure_model(PEROV, "heat_ref", name="x/y/crystal_graph/cgcnn-test", target_range=(1.0, -1.0),
                              library=tmp_path)
    phonon = DATA / "structures" / "mp_phonon_dielectric_matminer.jsonl"
    directory = build_structure_model(phonon, "eps_electronic", name="mp/eps/crystal_graph/cgcnn-test", node_dim=16,
                                      n_conv=1, hidden=(16,), epochs=1, max_train_rows=64, target_range=(1.0, 100.0),
                                      library=tmp_path)
    card = json.loads((Path(directory) / "card.json").read_text())
    assert card["source"]["n_rows_outside_target_range"] == 3
    assert card["source"]["target_range"] == [1.0, 100.0]
    assert card["source"]["n_rows_missing_target"] == 0 and card["source"]["n_rows_train"] == 64


def test_layer_norm_cgcnn_is_recorded_and_reloads_bit_identically(tmp_path):
    """CGCNN(norm="layer") (the carbon_24 library recipe): the card records the norm, the model reloads
    with LayerNorm weights and predicts the same bits; the default card stays without the key (so
    earlier files keep their bytes); an unknown norm is refused."""
    carbon_path = DATA / "structures" / "carbon24_valtest_cdvae.jsonl"
    if not carbon_path.exists():
        pytest.skip(f"shared data not found at {carbon_path}")
    common = dict(node_dim=16, n_conv=1, hidden=(16,), epochs=1, max_train_rows=64, split_by="structure", library=tmp_path)
    for norm in ("layer", "batch"):
        directory = build_structure_model(carbon_path, "energy_per_atom_eV", name=f"carbon/e/crystal_graph/cgcnn-{norm}",
                                          norm=norm, **common)
        card = json.loads((Path(directory) / "card.json").read_text())
        assert card["architecture"]["init_args"].get("norm") == (None if norm == "batch" else "layer")
    model = lib.load("carbon/e/crystal_graph/cgcnn-layer", library=tmp_path)
    assert type(model.network.convs[0].norm_edges).__name__ == "LayerNorm"
    batch = read_structures(carbon_path).select(range(50))
    a, b = model.predict(batch), lib.load("carbon/e/crystal_graph/cgcnn-layer", library=tmp_path).predict(batch)
    assert np.array_equal(a, b) and np.all(np.isfinite(a))
    from matxfer.nn import CGCNN

    with pytest.raises(ValueError, match="norm"):
        CGCNN(norm="group")
