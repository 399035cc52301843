"""Molecules and polymers: SMILES / SDF / RDKit ``Mol`` in, descriptors and molecular graphs out.

Needs the ``rdkit`` extra (``pip install "matxfer[rdkit]"``); RDKit is imported on first use, so
``import matxfer`` stays free of it.

Reading (:func:`read_molecules`) follows the rule of :func:`matxfer.featurize`: one output row per
input row, in input order; ``errors="raise"`` raises :class:`~matxfer.exceptions.FeaturizationError`
on the first bad row, ``errors="nan"`` gives that row NaN features and lists it in
``result.rejected`` as ``(index, input, reason)`` with RDKit's own log message as the reason.

Presets of :func:`featurize` (feature names are stable and documented in ``docs/molecules.md``):

============================  ===================================================================
``"ecfp"`` / ``"fcfp"``       Morgan fingerprint (``radius``, default 2 = ECFP4; ``n_bits``,
                              default 2048; ``counts=True`` for count vectors); FCFP uses RDKit's
                              feature (pharmacophore) atom invariants
``"maccs"``                   the 167 MACCS keys (bit 0 is always 0, as RDKit numbers them)
``"atompair"``, ``"torsion"`` hashed atom-pair / topological-torsion fingerprints (``n_bits``,
                              ``counts``)
``"rdkit2d"``                 every descriptor in ``rdkit.Chem.Descriptors._descList`` (217 in
                              RDKit 2026.09); a descriptor that raises or returns +-inf gives NaN
``"composition:<preset>"``    the molecule's element amounts (implicit H included) through the
                              Rust composition core, e.g. ``"composition:magpie"``
============================  ===================================================================

Polymers: a repeat unit is a SMILES with two ``*`` end points (``*CC(*)C``, polypropylene).
``polymer=`` turns it into a molecule before featurization (see :data:`POLYMER_RULES`); with
``polymer=None`` the ``*`` atoms stay dummy atoms (atomic number 0), which fingerprints and graphs
accept and composition presets reject.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from matxfer.exceptions import FeaturizationError, InvalidArgumentError
from matxfer.featurize import Featurized, Rejected
from matxfer.graphs import BatchedGraph

__all__ = [
    "Molecules",
    "read_molecules",
    "featurize",
    "feature_names",
    "canonical_smiles",
    "polymer_to_molecule",
    "element_formula",
    "bemis_murcko_scaffolds",
    "MoleculeGraph",
    "build_molecule_graphs",
    "scaffold_split",
    "POLYMER_RULES",
    "FINGERPRINT_PRESETS",
    "HASHED_PRESETS",
    "shutdown_workers",
]

#: How the two ``*`` end points of a polymer repeat unit become a molecule.
#: ``"cap_h"``: each ``*`` becomes a hydrogen (the monomer-like unit, H-terminated);
#: ``"ring"``: the two end atoms are bonded to each other (a cyclic oligomer: the unit is repeated
#: 2 or 3 times when one copy would give a ring of fewer than 3 atoms);
#: ``"dimer"`` / ``"trimer"``: 2 / 3 copies joined head to tail, the outer ``*`` capped with H.
POLYMER_RULES = ("cap_h", "ring", "dimer", "trimer")

FINGERPRINT_PRESETS = ("ecfp", "fcfp", "maccs", "atompair", "torsion")
HASHED_PRESETS = ("ecfp", "fcfp", "atompair", "torsion")

# Below this many SMILES, worker processes cost more than they save (the first call also starts
# the persistent pool, ~0.5 s on 2 cores; rdkit2d costs ~5 ms per QM9 molecule, ECFP ~0.08 ms).
_MIN_ROWS_PER_PROCESS = 2000
_MIN_ROWS_PER_PROCESS_2D = 200


def _rdkit():
    try:
        from rdkit import Chem, rdBase
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('matxfer.molecules needs RDKit: pip install "matxfer[rdkit]"') from exc
    return Chem, rdBase


# -- reading ---------------------------------------------------------------------------------------


@dataclass
class Molecules:
    """Parsed molecules, one entry per input row: ``mols[i]`` is an RDKit ``Mol`` or ``None`` for a
    rejected row (listed in ``rejected``)."""

    mols: list
    inputs: list
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.mols)

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of the rows that were read."""
        return np.array([m is not None for m in self.mols], dtype=bool)

    def smiles(self, canonical: bool = True) -> list:
        """SMILES of every row (RDKit canonical by default; ``None`` for rejected rows)."""
        Chem, _ = _rdkit()
        return [None if m is None else Chem.MolToSmiles(m, canonical=canonical) for m in self.mols]


def _log_reason(messages: str, fallback: str) -> str:
    # RDKit prefixes each line with a "[hh:mm:ss] " timestamp; the reason is what follows.
    lines = [line.split("] ", 1)[-1].strip() for line in messages.splitlines() if line.strip()]
    return "; ".join(dict.fromkeys(lines)) or fallback


def _as_items(inputs: Any) -> list:
    module = type(inputs).__module__.split(".")[0]
    if isinstance(inputs, str):
        return [inputs]
    if module == "polars":
        import polars as pl

        if isinstance(inputs, pl.DataFrame):
            raise InvalidArgumentError("pass one column (a polars Series), not a DataFrame")
        return inputs.to_list()
    if module == "pyarrow":
        return inputs.to_pylist()
    if module == "pandas":
        return inputs.tolist()
    if isinstance(inputs, np.ndarray):
        if inputs.ndim != 1:
            raise InvalidArgumentError(f"expected a 1-d array of SMILES, got shape {inputs.shape}")
        return inputs.tolist()
    if isinstance(inputs, list):
        return inputs
    if isinstance(inputs, Iterable):
        return list(inputs)
    raise InvalidArgumentError(f"cannot read molecules from {type(inputs).__name__}")


def _is_sdf(path: Any) -> bool:
    return str(path).lower().endswith((".sdf", ".sdf.gz", ".mol", ".sd"))


def _read_sdf(path) -> tuple[list, list, list]:
    import gzip

    Chem, rdBase = _rdkit()
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    mols, inputs, reasons = [], [], []
    with opener(path, "rb") as fh, rdBase.CaptureErrorLog() as log:
        supplier = Chem.ForwardSDMolSupplier(fh, removeHs=True)
        seen = ""
        for k, mol in enumerate(supplier):
            new = log.messages[len(seen) :]
            seen = log.messages
            name = mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else ""
            mols.append(mol)
            inputs.append(name or f"{path}#{k}")
            reasons.append(None if mol is not None else _log_reason(new, "RDKit could not read the record"))
    return mols, inputs, reasons


def _largest_fragment(mol):
    Chem, _ = _rdkit()
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) < 2:
        return mol
    # Heavy atoms decide, then total atoms, then the canonical SMILES: a fixed, documented order.
    return max(frags, key=lambda f: (f.GetNumHeavyAtoms(), f.GetNumAtoms(), Chem.MolToSmiles(f)))


def _parse_one(item, Chem, rdBase, strip_salts: bool, polymer: Optional[str]):
    """(mol, reason) for one input; reason is None when the row is good."""
    if item is None or (isinstance(item, float) and item != item):
        return None, "missing value"
    if isinstance(item, Chem.Mol):
        mol = Chem.Mol(item)
    elif isinstance(item, str):
        if not item.strip():
            return None, "empty SMILES"
        mol = Chem.MolFromSmiles(item)
        if mol is None:
            # Parse again under a fresh capture to get this row's message alone (failures are rare;
            # reading the log after every row would cost more than the parse).
            with rdBase.CaptureErrorLog() as capture:
                Chem.MolFromSmiles(item)
            return None, _log_reason(capture.messages, "RDKit could not parse the SMILES")
    else:
        return None, f"expected a SMILES string or an RDKit Mol, got {type(item).__name__}"
    if strip_salts:
        mol = _largest_fragment(mol)
    if polymer is not None:
        try:
            mol = polymer_to_molecule(mol, polymer)
        except ValueError as exc:
            return None, str(exc)
    return mol, None


def read_molecules(
    inputs: Any,
    *,
    errors: str = "raise",
    strip_salts: bool = False,
    polymer: Optional[str] = None,
) -> Molecules:
    """Read SMILES (list, tuple, numpy array, pandas / polars / pyarrow column), RDKit ``Mol``
    objects, or an SDF file path (``.sdf``, ``.sdf.gz``).

    strip_salts
        Keep only the largest fragment (most heavy atoms; ties: more atoms, then canonical SMILES)
        of a multi-fragment input, which drops counter-ions and solvent (``CC(=O)[O-].[Na+]`` ->
        acetate). Off by default: the input is featurized as given.
    polymer
        One of :data:`POLYMER_RULES` to turn ``*``-terminated repeat units into molecules.
    errors
        ``"raise"`` or ``"nan"`` (bad rows are ``None`` in ``mols`` and listed in ``rejected``).
    """
    if errors not in ("raise", "nan"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'nan', got {errors!r}")
    if polymer is not None and polymer not in POLYMER_RULES:
        raise InvalidArgumentError(f"polymer must be one of {POLYMER_RULES} or None, got {polymer!r}")
    Chem, rdBase = _rdkit()
    if isinstance(inputs, (str, os.PathLike)) and _is_sdf(inputs):
        raw, names, read_reasons = _read_sdf(inputs)
        items: list = raw
    else:
        items = _as_items(inputs)
        names = [x if isinstance(x, str) else (Chem.MolToSmiles(x) if isinstance(x, Chem.Mol) else repr(x)) for x in items]
        read_reasons = [None] * len(items)
    mols: list = []
    rejected: list[Rejected] = []
    with rdBase.CaptureErrorLog():
        for k, item in enumerate(items):
            if read_reasons[k] is not None:
                mol, reason = None, read_reasons[k]
            else:
                mol, reason = _parse_one(item, Chem, rdBase, strip_salts, polymer)
            if reason is not None:
                if errors == "raise":
                    raise _error(k, names[k], reason)
                rejected.append(Rejected(k, names[k], reason))
            mols.append(mol)
    return Molecules(mols, names, rejected)


def _error(index: int, text: str, reason: str) -> FeaturizationError:
    exc = FeaturizationError(f"row {index} ({text!r}): {reason}")
    exc.index, exc.input, exc.reason = index, text, reason
    return exc


def canonical_smiles(inputs: Any, *, errors: str = "raise", strip_salts: bool = False, polymer=None) -> list:
    """RDKit canonical SMILES of every row (``None`` for a rejected row with ``errors="nan"``)."""
    return read_molecules(inputs, errors=errors, strip_salts=strip_salts, polymer=polymer).smiles(True)


# -- polymers --------------------------------------------------------------------------------------


def polymer_to_molecule(mol, rule: str = "cap_h"):
    """Turn a repeat unit with exactly two ``*`` end points into a molecule (see :data:`POLYMER_RULES`).

    Raises ``ValueError`` when the unit does not have exactly two ``*`` atoms each with one bond.
    """
    Chem, _ = _rdkit()
    if isinstance(mol, str):
        parsed = Chem.MolFromSmiles(mol)
        if parsed is None:
            raise ValueError(f"RDKit could not parse {mol!r}")
        mol = parsed
    if rule not in POLYMER_RULES:
        raise InvalidArgumentError(f"polymer rule must be one of {POLYMER_RULES}, got {rule!r}")
    dummies = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if len(dummies) != 2:
        raise ValueError(f"a polymer repeat unit needs exactly two '*' end points, found {len(dummies)}")
    ends = []
    for d in dummies:
        atom = mol.GetAtomWithIdx(d)
        if atom.GetDegree() != 1:
            raise ValueError(f"each '*' must have exactly one bond, atom {d} has {atom.GetDegree()}")
        bond = atom.GetBonds()[0]
        ends.append((d, bond.GetOtherAtomIdx(d), bond.GetBondType()))
    (d1, a1, bond_type), (d2, a2, _) = ends
    if rule == "cap_h":
        n_copies, close = 1, False
    elif rule == "dimer":
        n_copies, close = 2, False
    elif rule == "trimer":
        n_copies, close = 3, False
    else:
        close = True
        # Ring size of one copy = atoms on the path a1..a2; repeat the unit until it is >= 3.
        path = len(Chem.GetShortestPath(mol, a1, a2)) if a1 != a2 else 1
        n_copies = 1 if path >= 3 else (2 if 2 * path >= 3 else 3)
    unit = Chem.Mol(mol)
    n_unit = unit.GetNumAtoms()
    rw = Chem.RWMol(unit)
    for _ in range(n_copies - 1):
        rw.InsertMol(unit)
    remove = []
    for k in range(n_copies - 1):
        tail_atom, head_atom = k * n_unit + a2, (k + 1) * n_unit + a1
        rw.AddBond(tail_atom, head_atom, bond_type)
        remove += [k * n_unit + d2, (k + 1) * n_unit + d1]
    first_dummy, last_dummy = d1, (n_copies - 1) * n_unit + d2
    if close:
        rw.AddBond((n_copies - 1) * n_unit + a2, a1, bond_type)
        remove += [first_dummy, last_dummy]
    else:
        # Cap: a single-bonded '*' becomes a hydrogen atom (removed again after sanitization, which
        # keeps aromatic end atoms kekulizable); a '*' on a double or triple bond is dropped and its
        # end atom gets as many hydrogens as the bond's order ('*=C' -> CH2=).
        for d, end in ((first_dummy, a1), ((n_copies - 1) * n_unit + d2, (n_copies - 1) * n_unit + a2)):
            order = int(round(rw.GetBondBetweenAtoms(d, end).GetBondTypeAsDouble()))
            if order == 1:
                rw.GetAtomWithIdx(d).SetAtomicNum(1)
                rw.GetAtomWithIdx(d).SetIsotope(0)
            else:
                atom = rw.GetAtomWithIdx(end)
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() + order)
                remove.append(d)
    for idx in sorted(remove, reverse=True):
        rw.RemoveAtom(idx)
    out = rw.GetMol()
    _, rdBase = _rdkit()
    with rdBase.CaptureErrorLog() as capture:
        try:
            Chem.SanitizeMol(out)
            out = Chem.RemoveHs(out)
        except Exception:  # RDKit raises its own sanitization exception types
            reason = _log_reason(capture.messages, "sanitization failed")
            raise ValueError(f"polymer rule {rule!r} gives an invalid molecule: {reason}") from None
    return out


# -- descriptors -----------------------------------------------------------------------------------


def element_formula(mol) -> Optional[str]:
    """Element amounts of a molecule as a formula string (implicit and explicit H counted, charges
    ignored), e.g. ``C2H6O1``; ``None`` if it holds a dummy (``*``) or query atom."""
    counts: dict[str, int] = {}
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum()
        if z == 0:
            return None
        symbol = atom.GetSymbol()
        counts[symbol] = counts.get(symbol, 0) + 1
        n_h = atom.GetTotalNumHs()
        if n_h:
            counts["H"] = counts.get("H", 0) + n_h
    return "".join(f"{s}{n}" for s, n in counts.items()) or None


def _rdkit2d_names() -> list[str]:
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def _generator(preset: str, radius: int, n_bits: int):
    from rdkit.Chem import rdFingerprintGenerator as fg

    if preset == "ecfp":
        return fg.GetMorganGenerator(radius=radius, fpSize=n_bits)
    if preset == "fcfp":
        return fg.GetMorganGenerator(radius=radius, fpSize=n_bits, atomInvariantsGenerator=fg.GetMorganFeatureAtomInvGen())
    if preset == "atompair":
        return fg.GetAtomPairGenerator(fpSize=n_bits)
    if preset == "torsion":
        return fg.GetTopologicalTorsionGenerator(fpSize=n_bits)
    raise InvalidArgumentError(f"no fingerprint generator for {preset!r}")


@dataclass(frozen=True)
class _Spec:
    preset: str
    radius: int = 2
    n_bits: int = 2048
    counts: bool = False

    @property
    def kind(self) -> str:
        if self.preset.startswith("composition:"):
            return "composition"
        return self.preset

    def names(self) -> list[str]:
        p = self.preset
        if p in ("ecfp", "fcfp"):
            tag = f"{p}{2 * self.radius}"
        elif p in ("atompair", "torsion"):
            tag = p
        elif p == "maccs":
            return [f"maccs_{k}" for k in range(167)]
        elif p == "rdkit2d":
            return _rdkit2d_names()
        elif p.startswith("composition:"):
            import matxfer

            return list(matxfer.feature_names(p.split(":", 1)[1]))
        else:  # pragma: no cover - checked in _spec
            raise InvalidArgumentError(p)
        return [f"{tag}_{'count' if self.counts else 'bit'}_{k}" for k in range(self.n_bits)]


def _spec(preset: str, radius: int, n_bits: int, counts: bool) -> _Spec:
    known = (*FINGERPRINT_PRESETS, "rdkit2d")
    if preset not in known and not preset.startswith("composition:"):
        raise InvalidArgumentError(f"unknown molecule preset {preset!r}; known: {known} and 'composition:<preset>'")
    if preset in ("maccs", "rdkit2d") or preset.startswith("composition:"):
        if counts:
            raise InvalidArgumentError(f"counts=True applies to hashed fingerprints, not {preset!r}")
    if int(radius) < 0 or int(n_bits) < 1:
        raise InvalidArgumentError("radius must be >= 0 and n_bits >= 1")
    return _Spec(preset, int(radius), int(n_bits), bool(counts))


def feature_names(preset: str = "ecfp", *, radius: int = 2, n_bits: int = 2048, counts: bool = False) -> list[str]:
    """Feature names of a molecule preset, in output column order."""
    return _spec(preset, radius, n_bits, counts).names()


def _compute(spec: _Spec, mols: list, n_threads: int) -> np.ndarray:
    """Features of the non-None ``mols`` (rows of None stay NaN) as float64 or a compact dtype."""
    n = len(mols)
    good = [i for i, m in enumerate(mols) if m is not None]
    good_mols = [mols[i] for i in good]
    kind = spec.kind
    if kind in ("ecfp", "fcfp", "atompair", "torsion"):
        gen = _generator(kind, spec.radius, spec.n_bits)
        if not spec.counts and len(good) == n:  # no rejected row: no second full-size copy
            return _bits_to_numpy(gen.GetFingerprints(good_mols, numThreads=n_threads), spec.n_bits)
        out = np.zeros((n, spec.n_bits), dtype=np.uint32 if spec.counts else np.uint8)
        if spec.counts:
            for i, m in zip(good, good_mols):
                out[i] = gen.GetCountFingerprintAsNumPy(m)
        else:
            out[good] = _bits_to_numpy(gen.GetFingerprints(good_mols, numThreads=n_threads), spec.n_bits)
        return out
    if kind == "maccs":
        from rdkit.Chem import MACCSkeys

        out = np.zeros((n, 167), dtype=np.uint8)
        out[good] = _bits_to_numpy([MACCSkeys.GenMACCSKeys(m) for m in good_mols], 167)  # type: ignore[attr-defined]
        return out
    if kind == "rdkit2d":
        from rdkit.Chem import Descriptors

        funcs = [f for _, f in Descriptors._descList]
        out = np.full((n, len(funcs)), np.nan)
        for i, m in zip(good, good_mols):
            row = out[i]
            for k, f in enumerate(funcs):
                try:
                    row[k] = f(m)
                except Exception:  # RDKit descriptors raise assorted types on odd molecules
                    pass
        out[~np.isfinite(out)] = np.nan
        return out
    raise InvalidArgumentError(spec.preset)  # pragma: no cover - composition handled by the caller


def _packed_fps(fps: list) -> np.ndarray:
    """Bit vectors as packed uint8 rows (bit k of a vector is bit k % 8, little-endian, of byte
    k // 8) through RDKit's FPS hex text: one C++ call per vector and no per-bit Python work."""
    from rdkit import DataStructs

    if not fps:
        return np.zeros((0, 0), dtype=np.uint8)
    packed = np.frombuffer(bytes.fromhex("".join([DataStructs.BitVectToFPSText(fp) for fp in fps])), dtype=np.uint8)
    return packed.reshape(len(fps), -1)


def _bits_to_numpy(fps: list, n_bits: int) -> np.ndarray:
    """Bit vectors as a uint8 (n, n_bits) 0/1 array (one vectorised unpack of the packed rows),
    2-3x faster than a per-bit or per-vector numpy copy."""
    if not fps:
        return np.zeros((0, n_bits), dtype=np.uint8)
    return np.unpackbits(_packed_fps(fps), axis=1, count=n_bits, bitorder="little")


def _packed_bits(spec: _Spec, mols: list) -> np.ndarray:
    """Packed (n, ceil(n_bits / 8)) uint8 bit fingerprints of a hashed preset; None rows are 0."""
    good = [i for i, m in enumerate(mols) if m is not None]
    out = np.zeros((len(mols), -(-spec.n_bits // 8)), dtype=np.uint8)
    if good:
        gen = _generator(spec.kind, spec.radius, spec.n_bits)
        out[good] = _packed_fps(gen.GetFingerprints([mols[i] for i in good], numThreads=1))
    return out


def _n_workers(n_jobs: Optional[int]) -> int:
    if n_jobs is not None:
        if int(n_jobs) < 1:
            raise InvalidArgumentError(f"n_jobs must be a positive integer, got {n_jobs!r}")
        return int(n_jobs)
    env = os.environ.get("MATXFER_NUM_THREADS")
    return int(env) if env else (os.cpu_count() or 1)


def featurize(
    inputs: Any,
    preset: str = "ecfp",
    *,
    radius: int = 2,
    n_bits: int = 2048,
    counts: bool = False,
    errors: str = "raise",
    strip_salts: bool = False,
    polymer: Optional[str] = None,
    n_jobs: Optional[int] = None,
    dtype: Union[type, np.dtype, str, None] = None,
) -> Featurized:
    """Descriptors of molecules; one row per input row, in input order.

    Parameters
    ----------
    inputs
        SMILES (list / numpy / pandas / polars / pyarrow), RDKit ``Mol`` objects, a
        :class:`Molecules` from :func:`read_molecules`, or an SDF path.
    preset
        ``"ecfp"``, ``"fcfp"``, ``"maccs"``, ``"atompair"``, ``"torsion"``, ``"rdkit2d"`` or
        ``"composition:<composition preset>"`` (see the module docstring).
    radius, n_bits, counts
        Morgan radius (2 = ECFP4), fingerprint length, count instead of bit vectors.
    errors, strip_salts, polymer
        As in :func:`read_molecules`.
    n_jobs
        Worker processes for SMILES input of at least 2000 rows (200 for ``rdkit2d``; default
        ``MATXFER_NUM_THREADS`` or all cores; 1 = in this process). RDKit's SMILES parser and
        descriptor functions hold the GIL, so processes, not threads, are what scale. The pool is
        started on first use and kept for later calls (:func:`shutdown_workers` stops it); each
        worker parses its chunk itself and sends back packed bits. Results do not depend on
        ``n_jobs``.
    dtype
        ``float32`` (default for fingerprints) or ``float64`` (default for ``rdkit2d`` and
        composition presets); bit fingerprints also take ``uint8`` (0/1, a quarter of the memory of
        float32; rejected rows are then 0 and listed in ``result.rejected``). Rejected rows are NaN
        in float output.
    """
    spec = _spec(preset, radius, n_bits, counts)
    if errors not in ("raise", "nan"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'nan', got {errors!r}")
    default = np.float32 if spec.kind in FINGERPRINT_PRESETS else np.float64
    try:
        dt = np.dtype(default if dtype is None else dtype)
    except TypeError:
        raise InvalidArgumentError(f"dtype must be float32, float64 or (bit fingerprints) uint8, got {dtype!r}") from None
    bits = spec.kind in FINGERPRINT_PRESETS and not spec.counts
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)) and not (bits and dt == np.dtype(np.uint8)):
        raise InvalidArgumentError(f"dtype must be float32, float64 or (bit fingerprints) uint8, got {dt}")
    names = spec.names()
    workers = _n_workers(n_jobs)

    if spec.kind == "composition":
        mols = inputs if isinstance(inputs, Molecules) else read_molecules(inputs, errors=errors, strip_salts=strip_salts, polymer=polymer)
        return _composition(mols, spec, errors, workers, dt)

    items = None if isinstance(inputs, Molecules) or (isinstance(inputs, (str, os.PathLike)) and _is_sdf(inputs)) else _as_items(inputs)
    threshold = _MIN_ROWS_PER_PROCESS_2D if spec.kind == "rdkit2d" else _MIN_ROWS_PER_PROCESS
    if items is not None and workers > 1 and len(items) >= threshold and all(isinstance(s, str) for s in items):
        from matxfer import _molecule_workers

        values, found = _molecule_workers.featurize(items, spec, strip_salts, polymer, workers, dt)
        rejected = [Rejected(k, text, reason) for k, text, reason in found]
        if errors == "raise" and rejected:
            r = rejected[0]
            raise _error(r.index, r.input, r.reason)
    else:
        mols = inputs if isinstance(inputs, Molecules) else read_molecules(items if items is not None else inputs, errors=errors, strip_salts=strip_salts, polymer=polymer)
        if errors == "raise" and mols.rejected:
            r = mols.rejected[0]
            raise _error(r.index, r.input, r.reason)
        values, rejected = _compute(spec, mols.mols, workers), list(mols.rejected)
    out = values.astype(dt, copy=False)
    if rejected:
        out[[r.index for r in rejected]] = np.nan if dt.kind == "f" else 0
    return Featurized(out, names, rejected)


def shutdown_workers() -> None:
    """Stop the persistent worker processes of :func:`featurize` (started again when needed)."""
    from matxfer import _molecule_workers

    _molecule_workers.shutdown()


def _composition(mols: Molecules, spec: _Spec, errors: str, workers: int, dt: np.dtype) -> Featurized:
    import matxfer

    formulas, rejected = [], list(mols.rejected)
    bad = {r.index for r in rejected}
    for k, m in enumerate(mols.mols):
        f = None if m is None else element_formula(m)
        if f is None and k not in bad:
            reason = "dummy atom '*' has no element data: pass polymer=... for repeat units"
            if errors == "raise":
                raise _error(k, mols.inputs[k], reason)
            rejected.append(Rejected(k, mols.inputs[k], reason))
        formulas.append(f if f is not None else "")
    res = matxfer.featurize(formulas, spec.preset.split(":", 1)[1], errors="nan", n_threads=workers, dtype=dt)
    known = {r.index for r in rejected}
    for r in res.rejected:
        if r.index not in known:
            if errors == "raise":
                raise _error(r.index, mols.inputs[r.index], r.reason)
            rejected.append(Rejected(r.index, mols.inputs[r.index], r.reason))
    rejected.sort(key=lambda r: r.index)
    values = res.values
    if rejected:
        values[[r.index for r in rejected]] = np.nan
    return Featurized(values, res.feature_names, rejected)


# -- scaffolds -------------------------------------------------------------------------------------


def bemis_murcko_scaffolds(inputs: Any, *, include_chirality: bool = False) -> list[str]:
    """Bemis-Murcko scaffold SMILES of every row ("" for acyclic molecules)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mols = inputs if isinstance(inputs, Molecules) else read_molecules(inputs)
    return [MurckoScaffold.MurckoScaffoldSmiles(mol=m, includeChirality=include_chirality) for m in mols.mols]


def scaffold_split(
    inputs: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, seed: Optional[int] = None
) -> list[np.ndarray]:
    """Row indices of a scaffold split: molecules sharing a Bemis-Murcko scaffold stay together.

    ``seed=None``: the deterministic MoleculeNet/chemprop order (largest scaffold sets first, filling
    train, then validation, then test). With a seed, scaffold sets are shuffled (sets larger than
    half the test size still go to train first), giving a different but still scaffold-disjoint split.
    """
    scaffolds = bemis_murcko_scaffolds(inputs)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scaffolds):
        groups.setdefault(s, []).append(i)
    sets = list(groups.values())
    n = len(scaffolds)
    sizes = [int(round(f * n)) for f in fractions]
    sizes[0] = n - sum(sizes[1:])
    if seed is None:
        sets.sort(key=lambda g: (-len(g), g[0]))
    else:
        rng = np.random.default_rng(seed)
        big = [g for g in sets if len(g) > sizes[-1] / 2]
        small = [g for g in sets if len(g) <= sizes[-1] / 2]
        rng.shuffle(big)
        rng.shuffle(small)
        sets = big + small
    parts: list[list[int]] = [[] for _ in fractions]
    for g in sets:
        for k in range(len(parts)):
            if len(parts[k]) + len(g) <= sizes[k] or k == len(parts) - 1:
                parts[k] += g
                break
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


# -- graphs ----------------------------------------------------------------------------------------


@dataclass(repr=False)
class MoleculeGraph(BatchedGraph):
    """A :class:`matxfer.graphs.BatchedGraph` of molecules plus bond features.

    ``edge_attr`` (E, 7) float32: one-hot bond type (single, double, triple, aromatic, other),
    conjugated, in ring (names in ``edge_feature_names``); ``edge_bond`` (E,) int64: the RDKit bond
    index (within its molecule, offset by the bonds of earlier molecules) of each edge.
    """

    edge_attr: Optional[np.ndarray] = None
    edge_bond: Optional[np.ndarray] = None
    edge_feature_names: Optional[list] = None


_BOND_CODES = {"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "AROMATIC": 4}


def build_molecule_graphs(
    inputs: Any,
    *,
    hydrogens: bool = False,
    conformer: Union[bool, str] = False,
    seed: int = 0xF00D,
    errors: str = "raise",
    strip_salts: bool = False,
    polymer: Optional[str] = None,
    n_threads: Optional[int] = None,
) -> MoleculeGraph:
    """Molecular graphs (atoms = nodes, each bond = two directed edges) in the batched layout of
    crystal graphs, so ``matxfer.nn.GraphData.from_graphs`` and ``CGCNN`` use them unchanged.

    hydrogens
        ``True`` adds explicit hydrogen nodes (``Chem.AddHs``); default: heavy atoms only.
    conformer
        ``False``: edge lengths are the covalent-radius estimate of each bond (angstrom, bond-order
        corrected, see ``rust/matxfer-core/src/molecule_graph.rs``). ``True`` / ``"etkdg"``: embed
        one ETKDGv3 conformer (``seed``) and use its interatomic distances; ``"existing"``: use the
        conformer the molecule already has (e.g. from an SDF file). A molecule whose embedding fails
        is rejected under ``errors``.
    errors
        ``"raise"`` or ``"nan"``; with ``"nan"`` a rejected molecule becomes an empty graph (0 nodes)
        so graph g is still input row g, and is listed in ``result.rejected``.
    """
    Chem, _ = _rdkit()
    from matxfer import _core

    if conformer not in (False, True, "etkdg", "existing"):
        raise InvalidArgumentError(f"conformer must be False, True, 'etkdg' or 'existing', got {conformer!r}")
    mols = inputs if isinstance(inputs, Molecules) else read_molecules(inputs, errors=errors, strip_salts=strip_salts, polymer=polymer)
    rejected = list(mols.rejected)
    table = Chem.GetPeriodicTable()
    want_positions = conformer is not False
    atom_ptr, bond_ptr = [0], [0]
    numbers: list = []
    radii: list = []
    bonds: list = []
    types: list = []
    flags: list = []
    positions: list = []
    for k, mol in enumerate(mols.mols):
        if mol is not None and (hydrogens or conformer in (True, "etkdg")):
            mol = Chem.AddHs(mol, addCoords=conformer == "existing")
        if mol is not None and want_positions:
            reason = None
            if conformer == "existing":
                if mol.GetNumConformers() == 0:
                    reason = "no conformer in the input (conformer='existing')"
            else:
                from rdkit.Chem import AllChem

                params = AllChem.ETKDGv3()  # type: ignore[attr-defined]
                params.randomSeed = int(seed)
                if AllChem.EmbedMolecule(mol, params) != 0:  # type: ignore[attr-defined]
                    reason = "ETKDG could not embed a conformer"
            if reason is None and not hydrogens:
                mol = Chem.RemoveHs(mol)
            if reason is not None:
                if errors == "raise":
                    raise _error(k, mols.inputs[k], reason)
                rejected.append(Rejected(k, mols.inputs[k], reason))
                mol = None
        if mol is not None:
            for atom in mol.GetAtoms():
                z = atom.GetAtomicNum()
                numbers.append(z)
                radii.append(table.GetRcovalent(z) if z > 0 else 0.0)
            for bond in mol.GetBonds():
                bonds.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
                types.append(_BOND_CODES.get(str(bond.GetBondType()), 0))
                flags.append(int(bond.GetIsConjugated()) | (2 * int(bond.IsInRing())))
            if want_positions:
                positions.append(mol.GetConformer().GetPositions())
        atom_ptr.append(len(numbers))
        bond_ptr.append(len(types))
    pos = np.concatenate(positions).astype(np.float64) if want_positions and positions else (np.zeros((0, 3)) if want_positions else None)
    d = _core.build_molecule_graph_batch(
        np.asarray(atom_ptr, dtype=np.int64),
        np.asarray(numbers, dtype=np.int64),
        np.asarray(radii, dtype=np.float64),
        np.asarray(bond_ptr, dtype=np.int64),
        np.asarray(bonds, dtype=np.int64).reshape(-1, 2),
        np.asarray(types, dtype=np.uint8),
        np.asarray(flags, dtype=np.uint8),
        None if pos is None else np.ascontiguousarray(pos),
        n_threads,
    )
    rejected.sort(key=lambda r: r.index)
    graph = MoleculeGraph(**d, edge_feature_names=list(_core.molecule_edge_features()))
    graph.rejected = rejected  # type: ignore[attr-defined]
    return graph
