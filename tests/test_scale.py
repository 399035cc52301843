"""Scale-out paths on real data: Dask partitions equal the local call, rayon inside forked and
spawned workers, and DistributedDataParallel training on 2 CPU processes equal to 1 process."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import matxfer

from .conftest import STRUCTURES, shared

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _featurize_in_child(formulas):
    values = matxfer.featurize(formulas, "magpie", n_threads=2).values
    return float(np.nansum(values))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_rayon_pool_in_forked_and_spawned_workers(method, mp_gap_formulas):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} not available")
    formulas = mp_gap_formulas[:50_000]
    # The parent's rayon pool is started first: a forked child inherits its memory but not its threads.
    expected = _featurize_in_child(formulas)
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        results = pool.map_async(_featurize_in_child, [formulas, formulas[:20_000]]).get(timeout=120)
    assert results[0] == expected
    assert results[1] == _featurize_in_child(formulas[:20_000])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as local, distributed.Client(local) as client:
        yield client


def test_dask_featurize_equals_local_call(cluster):
    import dask.dataframe as dd

    import matxfer.dask

    frame = pd.read_csv(shared("composition/dft/jarvis_dft_3d_composition.csv"), keep_default_na=False, dtype={"formula": str})
    frame = frame.iloc[:20_000]
    ddf = dd.from_pandas(frame, npartitions=7)
    lazy = matxfer.dask.featurize(ddf["formula"], "magpie", n_threads=1)
    assert list(lazy.columns) == matxfer.feature_names("magpie")
    assert all(str(t) == "float64" for t in lazy.dtypes)
    result = lazy.compute()
    local = matxfer.featurize(frame["formula"].tolist(), "magpie", errors="nan")
    assert result.shape == local.values.shape and (result.index == frame.index).all()
    np.testing.assert_array_equal(result.to_numpy(), local.values)
    assert "NaN" in frame["formula"].tolist()  # sodium nitride went through the partitions as a formula

    float32 = matxfer.dask.featurize(ddf["formula"], "fraction", dtype="float32").compute()
    np.testing.assert_array_equal(float32.to_numpy(), matxfer.featurize(frame["formula"].tolist(), "fraction", dtype="float32").values)


def test_dask_featurize_structures_equals_local_call(cluster):
    import dask.dataframe as dd

    import matxfer.dask
    from matxfer.streaming import featurize_structures_file

    path = STRUCTURES / "perov5_valtest_cdvae.jsonl"
    import dask

    with open(path) as fh:  # json.loads rounds floats correctly, as the Rust parser does (pandas' reader may not)
        frame = pd.DataFrame([json.loads(next(fh)) for _ in range(600)])
    with dask.config.set({"dataframe.convert-string": False}):  # keep the list columns as lists
        ddf = dd.from_pandas(frame[["lattice", "species", "frac_coords"]], npartitions=3)
    result = matxfer.dask.featurize_structures(ddf).compute()
    import tempfile

    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        head = os.path.join(tmp, "head.jsonl")
        with open(path) as src, open(head, "w") as dst:
            dst.writelines(next(src) for _ in range(600))
        featurize_structures_file(head, os.path.join(tmp, "s.parquet"), progress=False)
        local = pl.read_parquet(os.path.join(tmp, "s.parquet")).drop(["id", "formula"]).to_numpy()
    np.testing.assert_array_equal(result.to_numpy(), local)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import pandas as pd
    import torch
    import matxfer
    from matxfer.nn import MLP, ArrayData, TrainConfig, Trainer, predict

    out, checkpoint = sys.argv[1], sys.argv[2]
    frame = pd.read_csv(sys.argv[3], keep_default_na=False, dtype={"formula": str}).iloc[:512]
    X, _ = matxfer.featurize(frame["formula"].tolist(), "magpie")
    y = frame["band_gap_expt_eV"].to_numpy(float)
    torch.manual_seed(0)
    model = MLP(X.shape[1], (64, 32)).fit_scaling(X).fit_target_scaling(y)
    saved_by = []
    original = getattr(Trainer, "_save_checkpoint", None)
    if original is not None:
        def spy(self, *args, **kwargs):
            saved_by.append(self.rank)
            return original(self, *args, **kwargs)
        Trainer._save_checkpoint = spy
    config = TrainConfig(epochs=2, batch_size=64, lr=2e-3, patience=None, val_fraction=0.0, seed=1, checkpoint=checkpoint)
    trainer = Trainer(config)
    trainer.fit(model, ArrayData(X, y))
    rank = trainer.rank
    with open(f"{out}.rank{rank}.json", "w") as fh:
        json.dump({"pred": predict(model, X[:200]).tolist(), "world": trainer.world_size, "saved_by": saved_by,
                   "loss": [h["train_loss"] for h in trainer.history]}, fh)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)
    data = str(shared("composition/experimental/expt_gap_matbench.csv"))
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "python"), "OMP_NUM_THREADS": "1", "MATXFER_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), str(tmp_path / "one.ckpt"), data],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr
    double = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
         str(script), str(tmp_path / "two"), str(tmp_path / "two.ckpt"), data],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    one = json.loads((tmp_path / "one.rank0.json").read_text())
    rank0 = json.loads((tmp_path / "two.rank0.json").read_text())
    rank1 = json.loads((tmp_path / "two.rank1.json").read_text())
    assert one["world"] == 1 and rank0["world"] == 2 and rank1["world"] == 2
    # Both ranks hold the same weights after every synchronised step.
    assert rank0["pred"] == rank1["pred"]
    # 512 rows, global batch 64 -> 32 rows per rank per step: the averaged gradient equals the
    # single-process one up to float32 summation order.
    np.testing.assert_allclose(rank0["pred"], one["pred"], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(rank0["loss"], one["loss"], rtol=1e-4)
    if one["saved_by"]:
        assert rank0["saved_by"] and not rank1["saved_by"]
        assert (tmp_path / "two.ckpt").exists()
