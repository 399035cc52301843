"""The command line end to end on small real files with bad rows: streaming featurization of
formulas and structures, the graph store, errors that name the line, the demo on a small setting."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import matxfer
from matxfer.structures import read_structures

from .conftest import STRUCTURES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "matxfer", *args], capture_output=True, text=True, timeout=timeout, env=env)


# Real expt_gap rows with bad ones spliced in at known positions.
BAD = {3: "Fe2Q3", 17: "", 40: "Ca(OH2", 99: "Xx"}


@pytest.fixture(scope="module")
def formulas_with_bad_rows(expt_gap_formulas):
    rows = list(expt_gap_formulas[:120])
    for position, text in BAD.items():
        rows[position] = text
    return rows


def _write_inputs(tmp_path, formulas):
    targets = [f"{i * 0.5}" for i in range(len(formulas))]
    csv_path = tmp_path / "in.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "formula", "target"])
        writer.writerows([[f"m{i}", f, t] for i, (f, t) in enumerate(zip(formulas, targets))])
    frame = pl.DataFrame({"id": [f"m{i}" for i in range(len(formulas))], "formula": formulas, "target": targets})
    frame.write_parquet(tmp_path / "in.parquet")
    with open(tmp_path / "in.jsonl", "w") as fh:
        for row in frame.iter_rows(named=True):
            fh.write(json.dumps(row) + "\n")
    return [csv_path, tmp_path / "in.parquet", tmp_path / "in.jsonl"]


def test_featurize_keeps_every_row_in_order_and_reports_bad_ones(tmp_path, formulas_with_bad_rows):
    formulas = formulas_with_bad_rows
    expected = matxfer.featurize(formulas, "magpie", errors="nan").values
    for path in _write_inputs(tmp_path, formulas):
        out = tmp_path / f"{path.suffix[1:]}.parquet"
        # A chunk size that does not divide the rows, so bad rows fall in several chunks.
        done = run("featurize", str(path), "--out", str(out), "--keep", "id", "target", "--chunk-size", "37")
        assert done.returncode == 0, done.stderr
        table = pl.read_parquet(out)
        assert table.columns[:3] == ["formula", "id", "target"]
        assert table["formula"].to_list() == formulas and table["id"].to_list() == [f"m{i}" for i in range(len(formulas))]
        features = table.drop(["formula", "id", "target"])
        assert features.width == 132
        nulls = features.select(pl.all().is_null().all()).row(0)
        assert not any(nulls)
        for i in range(len(formulas)):
            row = np.array(features.row(i), dtype=float)
            if i in BAD:
                assert all(v is None for v in features.row(i)), i
            else:
                np.testing.assert_array_equal(row, expected[i])
        with open(f"{out}.errors.csv") as fh:
            report = list(csv.DictReader(fh))
        assert [int(r["row"]) for r in report] == sorted(BAD)
        assert [r["input"] for r in report] == [BAD[k] for k in sorted(BAD)]
        assert "unknown element 'Q'" in report[0]["reason"] and "empty" in report[1]["reason"]
        assert f"rejected        {len(BAD)}" in done.stdout

    dropped = tmp_path / "dropped.parquet"
    done = run("featurize", str(tmp_path / "in.csv"), "--out", str(dropped), "--drop-invalid", "-q")
    assert done.returncode == 0 and done.stdout == ""
    assert pl.read_parquet(dropped)["formula"].to_list() == [f for i, f in enumerate(formulas) if i not in BAD]


def test_nothing_featurized_is_an_error(tmp_path):
    path = tmp_path / "all_bad.csv"
    path.write_text("formula\nFe2Q3\nXx\n")
    done = run("featurize", str(path), "--out", str(tmp_path / "o.parquet"))
    assert done.returncode == 1 and "no row could be featurized" in done.stderr


def test_truncated_inputs_give_a_clean_error_naming_the_line(tmp_path, expt_gap_formulas):
    lines = ["formula,target"] + [f"{f},1.0" for f in expt_gap_formulas[:500]]
    text = "\n".join(lines)
    cut = text[: text.rindex(",")]  # the last row loses its second field, as a cut-off download does
    path = tmp_path / "cut.csv"
    path.write_text(cut)
    done = run("featurize", str(path), "--out", str(tmp_path / "cut.parquet"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "line 501" in done.stderr, done.stderr
    assert not (tmp_path / "cut.parquet").exists() and not (tmp_path / "cut.parquet.partial").exists()

    jsonl = tmp_path / "cut.jsonl"
    jsonl.write_text("".join(json.dumps({"formula": f}) + "\n" for f in expt_gap_formulas[:50])[:-15])
    done = run("featurize", str(jsonl), "--out", str(tmp_path / "j.parquet"))
    assert done.returncode == 2 and "line 50" in done.stderr and "Traceback" not in done.stderr

    # extended XYZ cut inside the last frame
    batch = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl")
    from ase.io import write

    xyz = tmp_path / "frames.extxyz"
    write(xyz, [batch.to_ase(i) for i in range(20)], format="extxyz")
    content = xyz.read_text().splitlines(keepends=True)
    n_lines = len(content)
    (tmp_path / "cut.extxyz").write_text("".join(content[:-2]))
    done = run("featurize", str(tmp_path / "cut.extxyz"), "--out", str(tmp_path / "x.parquet"))
    assert done.returncode == 2 and f"line {n_lines - 1}" in done.stderr and "cut short" in done.stderr, done.stderr
    assert "--debug" not in done.stderr
    debug = run("featurize", str(tmp_path / "cut.extxyz"), "--out", str(tmp_path / "x.parquet"), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unwritable_output_fails_before_any_work(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("formula\nNaCl\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = run("featurize", str(path), "--out", str(blocker / "sub" / "out.parquet"))
    assert done.returncode == 2 and "not a folder" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("**/*.errors.csv"))
    done = run("featurize", str(path), "--out", str(tmp_path))
    assert done.returncode == 2 and "is a folder" in done.stderr
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        done = run("featurize", str(path), "--out", str(locked / "out.parquet"))
        assert done.returncode == 2 and "no write permission" in done.stderr
    done = run("demo", "--out", str(blocker / "demo"))
    assert done.returncode == 2 and "not a folder" in done.stderr


def _structure_lines(n: int):
    with open(STRUCTURES / "perov5_valtest_cdvae.jsonl") as fh:
        return [next(fh) for _ in range(n)]


def test_structures_featurize_and_graph_store_with_bad_structures(tmp_path):
    lines = _structure_lines(40)
    bad = {5: "unknown species", 21: "coordinates"}
    record = json.loads(lines[5])
    record["species"][0] = "Qq"
    lines[5] = json.dumps(record) + "\n"
    record = json.loads(lines[21])
    record["frac_coords"] = record["frac_coords"][:-1]
    lines[21] = json.dumps(record) + "\n"
    path = tmp_path / "s.jsonl"
    path.write_text("".join(lines))

    out = tmp_path / "s.parquet"
    done = run("featurize", str(path), "--out", str(out), "--chunk-size", "16")
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    assert table.height == 40 and table["id"].to_list() == [f"s.jsonl:{i + 1}" for i in range(40)]
    good = [i for i in range(40) if i not in bad]
    batch = read_structures(STRUCTURES / "perov5_valtest_cdvae.jsonl").select(good)
    dens = matxfer.structures.density_features(batch)
    np.testing.assert_allclose(table[good, "density"].to_numpy(), dens[:, 0])
    assert table[5, "density"] is None and table[21, "MagpieData mean Number"] is None
    with open(f"{out}.errors.csv") as fh:
        report = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in report] == sorted(bad) and report[0]["input"] == "s.jsonl:6"

    store = tmp_path / "store"
    done = run("graphs", str(path), "--out", str(store), "--cutoff", "4", "--target", "heat_ref", "--chunk-size", "16")
    assert done.returncode == 0, done.stderr
    from matxfer.graph_store import GraphStore
    from matxfer.graphs import build_graphs

    opened = GraphStore(store)
    assert len(opened) == 40 and list(np.flatnonzero(np.asarray(opened.valid) == 0)) == sorted(bad)
    reference = build_graphs(batch, 4.0)
    assert np.asarray(opened.numbers).tolist() == reference.numbers.tolist()
    np.testing.assert_array_equal(np.asarray(opened.distances), reference.distances.astype(np.float32))
    y = np.asarray(opened.y)
    assert np.isfinite(y[good]).all()


def test_graph_store_trains_like_graph_data(tmp_path):
    import torch

    from matxfer.nn import CGCNN, GraphData, GraphStoreData, TrainConfig, Trainer, predict

    path = tmp_path / "s.jsonl"
    path.write_text("".join(_structure_lines(64)))
    from matxfer.graph_store import write_graph_store

    write_graph_store(path, tmp_path / "store", cutoff=4.0, target="heat_ref", chunk_size=20, progress=False)
    stored = GraphStoreData(tmp_path / "store")
    batch = read_structures(path)
    y = [json.loads(line)["heat_ref"] for line in path.read_text().splitlines()]
    in_memory = GraphData.from_structures(batch, cutoff=4.0, y=y)
    config = TrainConfig(epochs=2, batch_size=16, patience=None, seed=3)
    results = []
    for data in (stored, in_memory):
        torch.manual_seed(0)
        model = Trainer(config).fit(CGCNN(node_dim=16, n_conv=1, n_gaussians=16, cutoff=4.0, hidden=(16,)), data)
        results.append(predict(model, data))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)


def test_pretrain_and_transfer_commands(tmp_path, mp_gap_formulas):
    import pandas as pd

    from .conftest import shared

    dft = pd.read_csv(shared("composition/dft/mp_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str}).iloc[:1500]
    dft.to_csv(tmp_path / "dft.csv", index=False)
    expt = pd.read_csv(shared("composition/experimental/expt_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str}).iloc[:200]
    expt.to_csv(tmp_path / "expt.csv", index=False)
    done = run("pretrain", str(tmp_path / "dft.csv"), "--target", "band_gap_pbe_eV", "--out", str(tmp_path / "src"),
               "--epochs", "2", "--hidden", "32", "16")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "src" / "model.json").exists()
    done = run("transfer", str(tmp_path / "expt.csv"), "--target", "band_gap_expt_eV", "--source", str(tmp_path / "src"),
               "--out", str(tmp_path / "tr"), "--folds", "2", "--epochs", "3", "--unit", "eV")
    assert done.returncode == 0, done.stderr
    assert "| delta |" in done.stdout and "| scratch |" in done.stdout
    for name in ("cv.md", "predictions.csv", "parity.png", "learning_curve.png"):
        assert (tmp_path / "tr" / name).stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "tr" / "predictions.csv")) == 200


def test_help_for_each_command_and_fast_start():
    for command in ("featurize", "graphs", "pretrain", "transfer", "demo"):
        done = run(command, "--help")
        assert done.returncode == 0 and "--quiet" in done.stdout
    code = "import sys, matxfer.cli; matxfer.cli.build_parser(); print(sorted(m for m in ('torch', 'polars', 'pyarrow', 'pandas') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.path.join(REPO, "python")})
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# A child interpreter in which `import torch` fails as it does where torch is not installed.
NO_TORCH = ("import sys\n"
            "class _NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
            "sys.meta_path.insert(0, _NoTorch())\n")


def test_demo_small_setting(tmp_path):
    code = (NO_TORCH + "import runpy; sys.argv = ['matxfer', 'demo', '--quick', '--jobs', '2', '--out', %r]; "
            "runpy.run_module('matxfer', run_name='__main__')") % str(tmp_path / "demo")
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "python")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)  # torch blocked
    assert done.returncode == 0, done.stderr
    assert "Delta" in done.stdout and "from scratch" in done.stdout and "gradient boosting" in done.stdout
    assert "Ax/SAASBO CrabNet" in done.stdout and "unseen" in done.stdout
    for name in ("expt_gap_magpie_full.parquet", "predictions.csv", "parity.png", "learning_curve.png", "summary.json"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(summary["cv"]) == {"delta_gbm", "gbm", "scratch", "source"}
    predictions = pl.read_csv(tmp_path / "demo" / "predictions.csv", schema_overrides={"formula": pl.String})
    assert predictions.height == 500 and predictions["predicted_delta_gbm_eV"].min() >= 0.0
    # the rows counted as unseen are exactly the held-out bucket of the library's split rule
    assert summary["source"]["unseen_rows"] == int(predictions["unseen_by_source"].sum()) > 0
    # the fits ran in 2 worker processes above; all in this process they give the same bytes
    from matxfer import demo

    assert demo.run(tmp_path / "serial", quick=True, quiet=True, progress=False, jobs=1) == 0
    assert (tmp_path / "serial" / "predictions.csv").read_bytes() == (tmp_path / "demo" / "predictions.csv").read_bytes()
    serial = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert serial["cv"]["delta_gbm"]["mae"] == summary["cv"]["delta_gbm"]["mae"]
    assert serial["learning_curve"] == summary["learning_curve"]


def test_demo_source_overlap_figure():
    """The demo's SOURCE_OVERLAP: rebuild the source model's training rows from the shared data with its
    card's split, check them against the card's rows_sha256, and count the expt_gap rows whose
    composition occurs among them; none of them may lie in the held-out bucket the demo calls unseen."""
    from matxfer import demo, library
    from matxfer._evaluation import composition_keys
    from matxfer.library import builder
    from matxfer.library.model import rows_sha256

    from .conftest import shared

    card = library.card(demo.SOURCE_MODEL)
    task = next(t for t in builder.TASKS if f"{t.dataset}/{t.property}" == "mp_gap/band_gap")
    config = builder.BuildConfig.from_recipe(card["build"]["config"])
    formulas, y = builder._read(shared(task.file).parents[len(Path(task.file).parts) - 1], task)
    train, _, _ = builder._split(formulas, config)
    ok = np.isfinite(matxfer.featurize(list(formulas[train]), "magpie_full", errors="nan", dtype=np.float32).values).all(axis=1)
    assert rows_sha256(formulas[train][ok], y[train][ok]) == card["source"]["rows_sha256"]
    with open(os.path.join(REPO, "python", "matxfer", "data", "expt_gap_matbench.csv")) as fh:
        expt = [row["formula"] for row in csv.DictReader(fh)]
    seen_keys = set(composition_keys(list(formulas[train][ok])).tolist())
    seen = np.array([k in seen_keys for k in composition_keys(expt)])
    assert int(seen.sum()) == demo.SOURCE_OVERLAP
    held_out, _ = builder.held_out_mask(expt, config.test_fraction)
    assert not (held_out & seen).any() and held_out.sum() > 300


def test_formula_nan_is_sodium_nitride_not_a_missing_value(tmp_path):
    from .conftest import shared

    with open(shared("composition/dft/jarvis_dft_3d_composition.csv")) as fh:
        lines = fh.readlines()
    rows = [lines[0], *lines[1:6], *[line for line in lines if ",NaN," in line]]
    path = tmp_path / "jarvis.csv"
    path.write_text("".join(rows))
    out = tmp_path / "jarvis.parquet"
    done = run("featurize", str(path), "--out", str(out), "--preset", "fraction", "--keep", "jid", "band_gap_tbmbj_eV")
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    nitride = table.filter(pl.col("formula") == "NaN")
    assert nitride.height >= 2 and set(nitride["Na"].to_list()) == {0.5} and set(nitride["N"].to_list()) == {0.5}
    assert "" in table["band_gap_tbmbj_eV"].to_list()  # an empty cell stays an empty string, not a null


def test_missing_extra_is_one_line_naming_it(tmp_path):
    """A torch command where torch cannot be imported: one line naming the extra, no traceback."""
    code = (NO_TORCH + "import matxfer.cli as c; "
            "sys.exit(c.main(['pretrain', %r, '--target', 'band_gap_expt_eV', '--out', %r]))") % (
        os.path.join(REPO, "python", "matxfer", "data", "expt_gap_matbench.csv"), str(tmp_path / "m"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.path.join(REPO, "python")})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and 'pip install "matxfer[torch]"' in done.stderr, done.stderr


def test_predict_with_a_structure_model_reads_a_structure_file(tmp_path):
    """`matxfer predict` with the shipped CGCNN reads every structure of a structure file, in order,
    and gives the same numbers as the Python call; a formula table is one clear line, no traceback."""
    pytest.importorskip("torch")
    import matxfer.library as lib

    name = "perov5/heat_of_formation/crystal_graph/cgcnn"
    path = STRUCTURES / "mp_bulk_moduli100_megnet.jsonl"
    out = tmp_path / "pred.csv"
    proc = run("predict", name, str(path), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    table = pl.read_csv(out)
    batch = read_structures(path)
    assert table["index"].to_list() == list(range(len(batch)))
    assert table["id"].to_list() == [str(i) for i in batch.ids]
    expected = lib.load(name).predict(batch)
    np.testing.assert_allclose(table["heat_of_formation"].to_numpy(), expected, rtol=0, atol=1e-12)

    formulas = tmp_path / "formulas.csv"
    formulas.write_text("formula\nNaCl\n")
    proc = run("predict", name, str(formulas), "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: cannot tell the format")


def test_transfer_command_keeps_a_composition_in_one_fold(tmp_path):
    """ESTM thermal conductivity at several temperatures per material: by default (``--group-by auto``)
    the folds keep each reduced composition whole; ``--group-by row`` splits them, with a warning."""
    import pandas as pd

    from matxfer.transfer import composition_keys

    from .conftest import shared

    dft = pd.read_csv(shared("composition/dft/mp_gap_matbench.csv"), keep_default_na=False, dtype={"formula": str}).iloc[:800]
    dft.to_csv(tmp_path / "dft.csv", index=False)
    e = pd.read_csv(shared("composition/experimental/thermoelectric_estm.csv"), keep_default_na=False, dtype={"formula": str})
    e = e[pd.to_numeric(e.thermal_conductivity_W_per_mK, errors="coerce") > 0]
    e = e[e.formula.isin(e.formula.drop_duplicates().iloc[:40])]  # every temperature of 40 materials
    e.to_csv(tmp_path / "estm.csv", index=False)
    assert run("pretrain", str(tmp_path / "dft.csv"), "--target", "band_gap_pbe_eV", "--out", str(tmp_path / "src"),
               "--epochs", "1", "--hidden", "16").returncode == 0
    base = ("transfer", str(tmp_path / "estm.csv"), "--target", "thermal_conductivity_W_per_mK", "--source",
            str(tmp_path / "src"), "--folds", "3", "--epochs", "2", "--no-learning-curve")
    done = run(*base, "--out", str(tmp_path / "grouped"))
    assert done.returncode == 0, done.stderr
    assert "folds keep each reduced composition whole (40 compositions" in done.stdout
    done = run(*base[:-5], "--folds", "1", "--no-learning-curve", "--out", str(tmp_path / "one"))
    assert done.returncode == 2 and "--folds must be at least 2, got 1" in done.stderr
    done = run(*base, "--out", str(tmp_path / "rows"), "--group-by", "row")
    assert done.returncode == 0 and "warning: --group-by row" in done.stderr
    folds_per_composition = {}
    for run_name in ("grouped", "rows"):
        pred = pd.read_csv(tmp_path / run_name / "predictions.csv", keep_default_na=False, dtype={"formula": str})
        assert pred.formula.tolist() == e.formula.tolist() and set(pred.fold) == {0, 1, 2}  # every row, in file order
        keys = composition_keys(pred.formula.tolist())
        folds_per_composition[run_name] = pd.Series(pred.fold.to_numpy()).groupby(keys).nunique()
    assert (folds_per_composition["grouped"] == 1).all()
    assert (folds_per_composition["rows"] > 1).sum() > 20  # KFold scatters most materials' temperatures
