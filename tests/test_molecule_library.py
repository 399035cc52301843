"""Molecular source models in the model library: build a small QM9-gap model, load it by name,
predict from SMILES (numpy, no torch at prediction), and refuse tampered cards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import shared

pytest.importorskip("rdkit")
torch = pytest.importorskip("torch")

import matxfer.library as lib  # noqa: E402
import matxfer.molecules as mm  # noqa: E402
from matxfer.exceptions import FeaturizationError, ModelFormatError  # noqa: E402
from matxfer.library.molecule import MoleculeLibraryModel, build_molecule_model, holdout_split  # noqa: E402

NAME = "qm9_small/homo_lumo_gap/ecfp/mlp"


@pytest.fixture(scope="module")
def qm9():
    return pd.read_csv(shared("molecules/qm9_homo_lumo_gap.csv")).sample(2000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def built(qm9, tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    # 2,000 SMILES: featurize's worker-process threshold, so the pool path is exercised too.
    directory = build_molecule_model(
        qm9.smiles.tolist(), qm9.homo_lumo_gap_hartree.to_numpy(float), name=NAME, property_name="homo_lumo_gap",
        units="Hartree", source={"dataset": "qm9_small", "file": "molecules/qm9_homo_lumo_gap.csv"},
        descriptor={"n_bits": 512, "counts": True}, hidden=(64,), epochs=10, batch_size=128, seed=0, library=root,
    )
    return root, directory


def test_molecule_model_round_trips_and_predicts_from_smiles(qm9, built):
    root, directory = built
    model = lib.load(NAME, library=root)
    assert isinstance(model, MoleculeLibraryModel)
    card = model.card
    assert card["modality"] == "molecule" and card["descriptor"]["preset"] == "ecfp"
    assert card["descriptor"]["n_bits"] == 512 and card["descriptor"]["counts"] is True
    assert card["source"]["n_rows_train"] + card["source"]["n_rows_test"] == len(qm9)
    assert list(lib.search(modality="molecule", library=root).name) == [NAME]
    # Learned something: hold-out R2 over seeds 0/1/2 was 0.691 / 0.673 / 0.670 (mean 0.678).
    assert card["metrics"]["r2"] > 0.5
    smiles = qm9.smiles.tolist()[:300]
    pred = model.predict(smiles)
    X = mm.featurize(smiles, "ecfp", n_bits=512, counts=True).values
    np.testing.assert_array_equal(pred, model.predict(X))
    with torch.no_grad():
        ref = model.to_torch()(torch.as_tensor(X)).numpy()[:, 0]
    np.testing.assert_allclose(pred, ref, rtol=1e-4, atol=1e-6)
    # The gap is in Hartree: QM9 molecules are 0.02-0.62 Ha.
    assert np.all((pred > 0.0) & (pred < 0.7))
    # one SMILES string is one molecule, as in mm.featurize
    np.testing.assert_allclose(model.predict(smiles[7]), pred[7:8], rtol=1e-5, atol=1e-7)


def test_molecule_model_names_a_bad_smiles(built):
    model = lib.load(NAME, library=built[0])
    with pytest.raises(FeaturizationError, match=r"row 1 \('C1CC'\)"):
        model.predict(["CCO", "C1CC"])


def test_tampered_molecule_descriptor_is_refused(built, tmp_path):
    _, directory = built
    for key, value in (("n_bits", 1024), ("preset", "fcfp"), ("radius", 3)):
        copy = tmp_path / key / NAME
        copy.mkdir(parents=True)
        card = json.loads((directory / "card.json").read_text())
        card["descriptor"][key] = value
        (copy / "card.json").write_text(json.dumps(card))
        (copy / "weights.safetensors").write_bytes((directory / "weights.safetensors").read_bytes())
        with pytest.raises(ModelFormatError, match="other features"):
            lib.load(NAME, library=tmp_path / key)


def test_holdout_split_keeps_scaffolds_on_one_side(qm9):
    train, test = holdout_split(qm9.smiles.tolist(), 0.1)
    assert len(train) + len(test) == len(qm9) and 0.05 < len(test) / len(qm9) < 0.15
    scaffolds = np.array([s or c for s, c in zip(mm.bemis_murcko_scaffolds(qm9.smiles.tolist()), mm.canonical_smiles(qm9.smiles.tolist()))])
    assert not set(scaffolds[train]) & set(scaffolds[test])
    # Independent of row order: the same molecules are test rows after a shuffle.
    perm = np.random.default_rng(1).permutation(len(qm9))
    _, test2 = holdout_split(qm9.smiles.iloc[perm].tolist(), 0.1)
    assert set(qm9.smiles.iloc[perm].to_numpy()[test2]) == set(qm9.smiles.to_numpy()[test])
