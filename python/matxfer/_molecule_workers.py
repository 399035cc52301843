"""Worker processes for :func:`matxfer.molecules.featurize` on many SMILES.

RDKit's SMILES parser and its descriptor functions hold the GIL, and parsing is about 85 % of a
plain ECFP loop on QM9 (77 of 90 us per molecule), so threads cannot scale it; processes do.
What keeps the parallel path cheap:

* one persistent pool per worker count (started on first use, reused by later calls, rebuilt
  after a fork or a crashed worker; :func:`shutdown` frees it);
* each worker parses and featurizes a contiguous chunk itself: only the chunk's SMILES strings go
  in, and one compact array comes back per chunk (bit fingerprints packed 8 to a byte, counts in
  the smallest unsigned type that holds the chunk's largest count, descriptors as float64), with
  the chunk's rejected rows as (index, input, reason) tuples; no RDKit object crosses the boundary;
* chunks are a few thousand molecules (at least ~0.1 s of work), so the per-chunk IPC cost is
  small, and there are several per worker so that a slow chunk does not leave a core idle;
* the parent unpacks each chunk straight into its slice of the preallocated output;
* while a new pool starts (~0.3 s, plus the import of ``__main__`` in the fork server), the
  parent featurizes chunks from the tail of the queue itself, so the start-up is not idle time.

Results do not depend on the number of workers: each row is computed by the same code on the
same SMILES, and rows are placed by their index.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Optional

import numpy as np

from .exceptions import MatxferError

_LOCK = threading.Lock()
_POOL: Optional[tuple[int, int, Any]] = None  # (pid, workers, executor)


def _warm() -> int:
    """Run once in each new worker: import RDKit and the featurizer before the first chunk."""
    from rdkit.Chem import Descriptors, rdFingerprintGenerator  # noqa: F401

    import matxfer.molecules  # noqa: F401

    return os.getpid()


def _executor(workers: int) -> tuple[Any, bool]:
    """The persistent pool for ``workers`` processes, and whether it was started just now."""
    global _POOL
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with _LOCK:
        pid = os.getpid()
        if _POOL is not None:
            owner, n, pool = _POOL
            if owner == pid and n == workers and not getattr(pool, "_broken", False):
                return pool, False
            if owner == pid:
                pool.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        # forkserver: a clean child, safe even when the parent holds torch / OpenMP / rayon threads.
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method), initializer=_warm)
        _POOL = (pid, workers, pool)
        return pool, True


def shutdown() -> None:
    """Stop the molecule worker processes (they are started again on the next large call)."""
    global _POOL
    with _LOCK:
        if _POOL is not None and _POOL[0] == os.getpid():
            _POOL[2].shutdown(wait=True, cancel_futures=True)
        _POOL = None


atexit.register(shutdown)


def _smallest_uint(values: np.ndarray) -> np.ndarray:
    top = int(values.max()) if values.size else 0
    for dt in (np.uint8, np.uint16):
        if top <= np.iinfo(dt).max:
            return values.astype(dt)
    return values.astype(np.uint32)


def _chunk(smiles: list, spec, strip_salts: bool, polymer: Optional[str]):
    """Parse and featurize one chunk (runs in a worker). Returns (compact values, n_bits or None,
    rejected as (local index, input, reason))."""
    from matxfer import molecules as mm

    parsed = mm.read_molecules(smiles, errors="nan", strip_salts=strip_salts, polymer=polymer)
    rejected = [(r.index, r.input, r.reason) for r in parsed.rejected]
    if spec.kind in mm.HASHED_PRESETS and not spec.counts:
        return mm._packed_bits(spec, parsed.mols), spec.n_bits, rejected
    values = mm._compute(spec, parsed.mols, 1)
    if values.dtype.kind == "u":
        values = _smallest_uint(values)
        if values.dtype == np.uint8 and spec.kind == "maccs":
            return np.packbits(values, axis=1, bitorder="little"), values.shape[1], rejected
    return values, None, rejected


def chunk_size(n: int, workers: int, kind: str) -> int:
    """Rows per chunk: about 8 chunks per worker, but at least ~0.1 s of work per chunk."""
    floor = 32 if kind == "rdkit2d" else 1024
    return int(min(max(floor, -(-n // (8 * workers))), 16384))


def featurize(items: list, spec, strip_salts: bool, polymer: Optional[str], workers: int, out_dtype: np.dtype):
    """Features of ``items`` (SMILES strings) computed in ``workers`` processes, as ``out_dtype``;
    returns (values, rejected as (index, input, reason), sorted by index)."""
    from concurrent.futures.process import BrokenProcessPool

    n = len(items)
    width = len(spec.names())
    step = chunk_size(n, workers, spec.kind)
    pool, fresh = _executor(workers)
    starts = list(range(0, n, step))
    futures = [pool.submit(_chunk, items[lo : lo + step], spec, strip_salts, polymer) for lo in starts]
    out = np.empty((n, width), dtype=out_dtype)
    rejected: list = []

    def place(lo: int, result) -> None:
        values, n_bits, rej = result
        hi = lo + values.shape[0]
        if n_bits is not None:
            out[lo:hi] = np.unpackbits(values, axis=1, count=n_bits, bitorder="little")
        else:
            out[lo:hi] = values
        rejected.extend((lo + k, text, reason) for k, text, reason in rej)

    try:
        done_here = set()
        if fresh:
            # Until a worker has finished its first chunk, take queued chunks from the tail.
            for k in range(len(futures) - 1, workers - 1, -1):
                if any(f.done() for f in futures[:workers]) or not futures[k].cancel():
                    break
                place(starts[k], _chunk(items[starts[k] : starts[k] + step], spec, strip_salts, polymer))
                done_here.add(k)
        for k, future in enumerate(futures):
            if k not in done_here:
                place(starts[k], future.result())
    except BrokenProcessPool as err:
        shutdown()
        raise MatxferError(
            "matxfer.molecules worker processes died. If this is a script, guard its entry point with "
            "`if __name__ == \"__main__\":` (the workers import the main module, as multiprocessing's "
            "forkserver and spawn do), or pass n_jobs=1 to featurize in this process"
        ) from err
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    rejected.sort(key=lambda r: r[0])
    return out, rejected
