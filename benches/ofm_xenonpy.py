"""XenonPy's orbital field matrix: matxfer ``orbital_field_matrix(flavour="xenonpy")`` against
XenonPy 0.6.7 ``xenonpy.descriptor.OrbitalFieldMatrix(including_d=True).featurize``, parity and
speed in one run.

    PYTHONPATH=/path/to/xenonpy python benches/ofm_xenonpy.py --ref-seconds 20

XenonPy reads its element vectors from pymatgen's ``Element.electronic_structure`` with a pattern
that expects ``<sup>`` tags around the electron counts; current pymatgen returns the string
without them (``[Ar].3d1.4s2``), so unpatched XenonPy gets all-zero vectors for every element but H
and He. The reference here is therefore XenonPy with ``get_element_representation`` overridden in
a subclass (:class:`PatchedXenonPyOFM`, a test shim) to read the untagged string, i.e. what
XenonPy computes with a pymatgen that still had the tags; the unpatched result is reported on a
line of its own.

Per shared set (perov_5, MP piezoelectric, MP phonon/dielectric): XenonPy (patched) on the first
structures until ``--ref-seconds``; matxfer on the same rows at 1 and 2 threads (best of
``--repeat``) and on the whole set. Parity: max over rows of max |difference| / max |XenonPy row|.
``--neighbors`` also compares, on the same rows, pymatgen's ``VoronoiNN(cutoff=10).get_nn_info``
(what XenonPy uses) with matxfer's Voronoi faces: neighbor, distance and weight per face.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benches.ionic import SETS, best, load, subset_batch, timed_subset  # noqa: E402

# XenonPy's intended element vectors, parsed from current pymatgen as the parity test parses them
from tests.test_ionic import xenonpy_element_vector  # noqa: E402


def xenonpy_classes():
    from xenonpy.descriptor import OrbitalFieldMatrix

    class PatchedXenonPyOFM(OrbitalFieldMatrix):
        """Test shim: XenonPy's featurizer with the element vectors parsed from the untagged
        ``electronic_structure`` of current pymatgen (pattern ``\\.\\d([spdf])(\\d+)``)."""

        @staticmethod
        def get_element_representation(name):
            return xenonpy_element_vector(name)

    return OrbitalFieldMatrix, PatchedXenonPyOFM


def neighbor_agreement(structs, batch, cells):
    """Compare ``VoronoiNN(cutoff=10).get_nn_info`` (weight > 0) with matxfer's faces, matched by
    neighbor and image vector (to 1e-4 A): ``(sites, sites with the same neighbors, largest weight
    difference on matched faces, largest weight of a neighbor only one side has, number of such
    neighbors on each side)``. pymatgen lists planes that touch the cell at an edge or a vertex
    with a rounding-size solid angle; matxfer drops faces below its area threshold."""
    from pymatgen.analysis.local_env import VoronoiNN

    sites = same = only_ours = only_theirs = 0
    worst = extra = 0.0
    for k, s in enumerate(structs):
        c = cells.of(k)
        nn = VoronoiNN(cutoff=10.0)
        for i in range(len(s)):
            sites += 1
            mine = c.i == i
            w = c.solid_angles[mine] / c.solid_angles[mine].max()
            f = batch.frac_coords[batch.ptr[k] : batch.ptr[k + 1]]
            vectors = (f[c.j[mine]] - f[i] + c.shifts[mine]) @ batch.lattices[k]
            ours = {(j, *np.round(v, 4).tolist()): x for j, v, x in zip(c.j[mine].tolist(), vectors, w.tolist())}
            theirs = {
                (n["site_index"], *np.round(n["site"].coords - s[i].coords, 4).tolist()): n["weight"]
                for n in nn.get_nn_info(s, i)
            }
            assert len(ours) == int(mine.sum())
            same += ours.keys() == theirs.keys()
            for key in ours.keys() & theirs.keys():
                worst = max(worst, abs(ours[key] - theirs[key]))
            for key in ours.keys() - theirs.keys():
                only_ours += 1
                extra = max(extra, ours[key])
            for key in theirs.keys() - ours.keys():
                only_theirs += 1
                extra = max(extra, theirs[key])
    return sites, same, worst, extra, only_ours, only_theirs


def run_set(args, name, batch, structs, patched_cls, plain_cls):
    from matxfer.structures import orbital_field_matrix, voronoi_cells

    def ours(b, threads=None):
        return orbital_field_matrix(b, flavour="xenonpy", n_threads=threads)

    t_all, _ = best(args.repeat, lambda: ours(batch))
    featurizer = patched_cls(including_d=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref, n = timed_subset(structs, args.ref_seconds, featurizer.featurize)
    sub = subset_batch(batch, n)
    t1, (mine, names) = best(args.repeat, lambda: ours(sub, 1))
    t2, (mine2, _) = best(args.repeat, lambda: ours(sub, 2))
    assert mine.tobytes() == mine2.tobytes()
    assert names == list(featurizer.feature_labels)
    ref = np.array(ref)
    err = (np.abs(mine - ref).max(axis=1) / np.abs(ref).max(axis=1)).max()
    print(
        f"| {name} | {n} of {len(batch)} | {err:.1e} | {t_ref / n * 1e3:.1f} ms | {t1 / n * 1e6:.0f} us "
        f"| **{t_ref / t1:.0f}x** | {t2 / n * 1e6:.0f} us | **{t_ref / t2:.0f}x** | {len(batch)} in {t_all:.3f} s |"
    )
    # Unpatched XenonPy on modern pymatgen, on the first rows (a few seconds' worth).
    plain = plain_cls(including_d=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw, _, m = timed_subset(structs[:n], min(args.ref_seconds, args.unpatched_seconds), plain.featurize)
    raw = np.array(raw)
    zero = int(np.sum(~raw.any(axis=1)))
    hhe = [k for k in range(m) if {sp.symbol for sp in structs[k].species} & {"H", "He"}]
    unpatched = (
        f"unpatched XenonPy, first {m} rows: {zero} all zero; {len(hhe)} contain H or He; "
        f"max |unpatched| / max |patched| = {(np.abs(raw).max(axis=1) / np.abs(ref[:m]).max(axis=1)).max():.2g}"
    )
    neighbors = ""
    if args.neighbors:
        cells = voronoi_cells(sub)
        sites, same, worst, extra, only_ours, only_theirs = neighbor_agreement(structs[:n], sub, cells)
        neighbors = (
            f"; VoronoiNN(cutoff=10) vs matxfer faces: {same}/{sites} sites with the same neighbors, max weight diff "
            f"{worst:.1e} on matched faces; {only_theirs} pymatgen-only and {only_ours} matxfer-only neighbors, "
            f"largest weight among them {extra:.1e}"
        )
    return unpatched + neighbors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ref-seconds", type=float, default=20.0, help="time given to XenonPy (patched) per set")
    ap.add_argument("--unpatched-seconds", type=float, default=5.0, help="time given to unpatched XenonPy per set")
    ap.add_argument("--neighbors", action="store_true", help="compare VoronoiNN(cutoff=10) neighbors too")
    args = ap.parse_args()
    import pymatgen.core
    import xenonpy

    plain_cls, patched_cls = xenonpy_classes()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, xenonpy {xenonpy.__version__}, pymatgen {pymatgen.core.__version__}"
    )
    print("| set | rows compared | max rel diff | XenonPy (patched) per row | matxfer 1 thread | ratio | matxfer 2 threads | ratio | matxfer whole set (2 threads) |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for name in SETS:
        batch, structs = load(name)
        notes.append(f"{name}: {run_set(args, name, batch, structs, patched_cls, plain_cls)}")
    for line in notes:
        print(line)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
