"""Hostile inputs: every case that used to abort the interpreter, hang or exhaust memory must now
be refused quickly with a matxfer exception naming the input. The dangerous calls run in a child
process (with an address-space limit), so a regression fails these tests instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import matxfer
from matxfer.structures import StructureBatch, neighbor_list

from .conftest import SHARED_DATA, read_formulas

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": os.path.join(REPO, "python"), "MATXFER_SHARED_DATA": str(SHARED_DATA)}
ENV.pop("MATXFER_MAX_MEMORY", None)
ENV.pop("MATXFER_NUM_THREADS", None)


def run_child(code: str, timeout: float = 120.0, limit_gb: float = 8.0) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter whose address space is capped at `limit_gb`."""
    prelude = textwrap.dedent(
        f"""
        import resource
        lim = int({limit_gb} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Each case: (name, expression evaluated in the child, expected exception class name, what the
# message must mention). `perov` is a StructureBatch of perov_5, `one` a 2-atom real structure.
CASES = [
    ("nan_cutoff", "neighbor_list(perov, float('nan'))", "InvalidArgumentError", "cutoff"),
    ("inf_cutoff", "neighbor_list(perov, float('inf'))", "InvalidArgumentError", "cutoff"),
    ("nan_cutoff_graph", "build_graphs(perov, float('nan'))", "InvalidArgumentError", "cutoff"),
    ("nan_cutoff_rdf", "radial_distribution(perov, float('nan'))", "InvalidArgumentError", "cutoff"),
    ("tiny_entry", "neighbor_list(cell([[1e-300, 0, 0], [0, 4, 0], [0, 0, 4]]), 5.0)", "StructureError", "volume"),
    ("huge_entry", "neighbor_list(cell([[1e308, 0, 0], [0, 4, 0], [0, 0, 4]]), 5.0)", "StructureError", "lattice"),
    ("infinite_volume", "neighbor_list(cell([[1e200, 0, 0], [0, 1e200, 0], [0, 0, 1e200]]), 5.0)", "StructureError", "lattice"),
    ("tiny_cell", "neighbor_list(cell([[0.0126, 0, 0], [0, 0.0126, 0], [0, 0, 0.0126]]), 5.0)", "StructureError", "periodic images"),
    ("tiny_cell_graph", "build_graphs(cell([[0.0126, 0, 0], [0, 0.0126, 0], [0, 0, 0.0126]]), 5.0)", "StructureError", "periodic images"),
    ("tiny_cell_rdf", "radial_distribution(cell([[0.0126, 0, 0], [0, 0.0126, 0], [0, 0, 0.0126]]))", "StructureError", "periodic images"),
    ("singular_cell", "neighbor_list(cell([[10, 0, 0], [0, 10, 0], [0, 0, 1e-7]]), 5.0)", "StructureError", "periodic images"),
    ("huge_rbf", "build_graphs(perov, 5.0, rbf=100000)", "InvalidArgumentError", "rbf"),
    ("negative_rbf", "build_graphs(perov, 5.0, rbf=-5)", "InvalidArgumentError", "rbf"),
    ("perov_30A_ceiling", "neighbor_list(perov, 30.0, max_pairs=10**7)", "LimitExceededError", "max_pairs"),
    ("max_pairs_negative", "neighbor_list(perov, 5.0, max_pairs=-1)", "InvalidArgumentError", "max_pairs"),
    ("bin_size_zero", "radial_distribution(one, 10.0, 0.0)", "InvalidArgumentError", "bin_size"),
    ("rdf_too_many_bins", "radial_distribution(one, 1000.0, 1e-6)", "InvalidArgumentError", "bins"),
    ("min_distance_nan", "neighbor_list(perov, 5.0, min_distance=float('nan'))", "InvalidArgumentError", "min_distance"),
    ("sine_n_max_huge", "sine_coulomb_eigenvalues(one, n_max=10**9)", "InvalidArgumentError", "n_max"),
    ("threads_huge", "neighbor_list(perov, 5.0, n_threads=10**5)", "InvalidArgumentError", "n_threads"),
    ("threads_2_63", "matxfer.featurize(['NaCl'], n_threads=2**63)", "InvalidArgumentError", "n_threads"),
    ("threads_bool", "matxfer.featurize(['NaCl'], n_threads=True)", "ArgumentTypeError", "n_threads"),
    ("threads_zero", "neighbor_list(perov, 5.0, n_threads=0)", "InvalidArgumentError", "n_threads"),
    ("knn_tiny_step", "build_graphs(perov, 1.0, k=12, cutoff_step=1e-300)", "InvalidArgumentError", "cutoff_step"),
    ("k_negative", "build_graphs(perov, 5.0, max_neighbors=-3)", "InvalidArgumentError", "k"),
]


@pytest.fixture(scope="module")
def hostile_results() -> dict:
    cases = json.dumps([(name, expr) for name, expr, _, _ in CASES])
    code = f"""
    import json, resource, time
    import numpy as np
    import matxfer
    from matxfer.structures import StructureBatch, neighbor_list, radial_distribution, sine_coulomb_eigenvalues
    from matxfer.graphs import build_graphs
    perov = StructureBatch.read("{SHARED_DATA}/structures/perov5_valtest_cdvae.jsonl")
    one = perov.select([0])
    def cell(lattice):
        return StructureBatch.from_arrays(np.array(lattice, float), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    out = {{}}
    for name, expr in json.loads({cases!r}):
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        try:
            eval(expr)
            out[name] = ["no error", "", 0.0, 0]
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc), time.perf_counter() - t0,
                         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0]
    print(json.dumps(out))
    """
    proc = run_child(code, timeout=300)
    assert proc.returncode == 0, f"child died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name,expr,cls,words", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_quickly(hostile_results, name, expr, cls, words):
    got_cls, message, seconds, rss_kb = hostile_results[name]
    assert got_cls == cls, f"{expr}: {got_cls}: {message}"
    assert words in message, message
    assert seconds < 1.0, f"{expr} took {seconds:.2f} s to refuse"
    assert rss_kb < 512 * 1024, f"{expr} used {rss_kb / 1024:.0f} MB before refusing"
    assert issubclass(getattr(matxfer.exceptions, cls), matxfer.MatxferError)


def test_structure_refusals_name_the_structure(shared_structures):
    batch = StructureBatch.read(shared_structures / "perov5_valtest_cdvae.jsonl").select(range(5))
    lattices = batch.lattices.copy()
    lattices[3] = [[10, 0, 0], [0, 10, 0], [0, 0, 1e-7]]
    bad = StructureBatch(lattices, batch.frac_coords, batch.numbers, batch.pbc, batch.ptr, batch.ids)
    with pytest.raises(matxfer.StructureError) as info:
        neighbor_list(bad, 5.0)
    assert info.value.index == 3 and info.value.name == batch.ids[3]
    assert "periodic images" in info.value.reason


def test_top_level_exports():
    from matxfer.exceptions import StructureError, StructureParseError

    assert matxfer.StructureError is StructureError and matxfer.StructureParseError is StructureParseError
    assert issubclass(matxfer.ArgumentTypeError, TypeError)
    assert issubclass(matxfer.LimitExceededError, ValueError)


def test_lone_surrogate_is_one_rejected_row(expt_gap_formulas):
    rows = expt_gap_formulas[:50] + ["Na\ud800Cl"] + expt_gap_formulas[50:60]
    result = matxfer.featurize(rows, "magpie", errors="nan")
    assert [r[0] for r in result.rejected] == [50]
    assert "unicode" in result.rejected[0][2].lower()
    import numpy as np

    assert np.isfinite(result.values[49]).all() and np.isnan(result.values[50]).all()
    with pytest.raises(matxfer.FeaturizationError) as info:
        matxfer.featurize(rows, "magpie")
    assert info.value.index == 50


def test_huge_amount_is_rejected_never_inf():
    import numpy as np

    result = matxfer.featurize(["Li1e308Se2O6", "Li2Se2O6"], "magpie", errors="nan")
    assert [r[0] for r in result.rejected] == [0] and "non_finite_feature" in result.rejected[0][2]
    assert not np.isinf(result.values).any() and np.isfinite(result.values[1]).all()
    with pytest.raises(matxfer.FeaturizationError) as info:
        matxfer.featurize(["NaCl", "Li1e308Se2O6"], "magpie")
    assert info.value.index == 1
    # Found by benches/fuzz.py: amounts whose sum overflows gave NaN features in an accepted row.
    result = matxfer.featurize(["1e308AlSiO1e-300", "Al1e308Si1e308", "AlSi"], "magpie", errors="nan")
    assert [r.index for r in result.rejected] == [0, 1]
    assert all("non_finite_feature" in r.reason for r in result.rejected)
    assert np.isfinite(result.values[2]).all()


def test_sigint_stops_a_large_featurize_within_half_a_second(mp_gap_formulas):
    code = f"""
    import sys, time
    import pandas as pd
    import matxfer
    formulas = pd.read_csv("{SHARED_DATA}/composition/dft/mp_gap_matbench.csv", keep_default_na=False, dtype={{"formula": str}})["formula"].tolist()
    rows = (formulas * (6_000_000 // len(formulas) + 1))[:6_000_000]
    print("ready", flush=True)
    try:
        matxfer.featurize(rows, "magpie", dtype="float32", n_threads=1)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", repr(time.time()), flush=True)
    X, _ = matxfer.featurize(formulas[:1000], "magpie")
    print("again", X.shape[0], flush=True)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = out.strip().splitlines()
    assert lines and lines[0].startswith("interrupted"), (out, err[-2000:])
    latency = float(lines[0].split()[1]) - sent
    assert latency < 0.5, f"KeyboardInterrupt arrived {latency:.3f} s after SIGINT"
    assert lines[1] == "again 1000"


def test_thread_pools_are_not_leaked():
    code = """
    import os, time
    import matxfer
    rows = ["Fe2O3", "NaCl", "CuSO4·5H2O"] * 400
    for n in range(1, 65):
        matxfer.featurize(rows, "magpie", n_threads=n)
    time.sleep(0.5)
    print(len(os.listdir("/proc/self/task")))
    """
    proc = run_child(code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = int(proc.stdout.split()[-1])
    # Two cached pools (63 + 64 threads) plus the interpreter's own threads.
    assert live <= 64 + 63 + 16, f"{live} live threads after 64 distinct thread counts"


def test_rayon_pools_work_in_forked_workers():
    code = """
    import multiprocessing as mp
    import numpy as np
    import matxfer
    rows = ["Fe2O3", "NaCl", "CuSO4·5H2O", "Ca(OH)2"] * 500
    parent, _ = matxfer.featurize(rows, "magpie", n_threads=2)   # starts a pool before the fork
    def work(k):
        X, _ = matxfer.featurize(rows, "magpie", n_threads=2)
        return float(np.nansum(X))
    with mp.get_context("fork").Pool(2) as pool:
        sums = pool.map_async(work, range(4)).get(timeout=60)
    assert all(s == float(np.nansum(parent)) for s in sums), sums
    print("ok")
    """
    proc = run_child(code, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_every_public_refusal_is_a_matxfer_error(shared_structures):
    batch = StructureBatch.read(shared_structures / "perov5_valtest_cdvae.jsonl").select(range(3))
    for call in (
        lambda: neighbor_list(batch, -1.0),
        lambda: neighbor_list(batch, 5.0, max_pairs=1.5),
        lambda: matxfer.featurize(["NaCl"], errors="sometimes"),
        lambda: matxfer.featurize(["NaCl"], n_threads=-2),
    ):
        with pytest.raises(matxfer.MatxferError):
            call()


def test_read_formulas_helper_is_real():
    # Guards the SIGINT test's input: the shared file is large enough to repeat.
    assert len(read_formulas("composition/dft/mp_gap_matbench.csv")) > 100_000
