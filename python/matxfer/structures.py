"""Crystal structures in flat arrays, file readers and exact periodic neighbor lists.

A :class:`StructureBatch` holds many structures as contiguous arrays:

* ``lattices``    (S, 3, 3) float64, angstrom, rows are the lattice vectors a, b, c;
* ``frac_coords`` (N, 3) float64, fractional coordinates (kept as given, not wrapped);
* ``numbers``     (N,) int64 atomic numbers;
* ``pbc``         (S, 3) bool periodicity along a, b, c;
* ``ptr``         (S + 1,) int64: structure ``s`` owns sites ``ptr[s]:ptr[s + 1]``;
* ``ids``         list of identifiers (file/line or dataset id) used in error messages.

Cartesian positions are ``frac_coords @ lattice``. Neighbor pairs ``(i, j, S)`` satisfy
``|r_ij| <= cutoff`` with ``r_ij = r_j - r_i + S @ lattice`` (angstrom); the list is full (both
directions), contains periodic self-images and never the zero-shift self pair.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from matxfer import _core
from matxfer.exceptions import ArgumentTypeError, InvalidArgumentError, StructureError, StructureParseError

_FORMATS = {
    ".cif": "cif",
    ".mcif": "cif",
    ".vasp": "poscar",
    ".poscar": "poscar",
    ".xyz": "xyz",
    ".extxyz": "xyz",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


class StructureBatch:
    """Many structures in contiguous arrays (see the module docstring for the layout)."""

    def __init__(self, lattices, frac_coords, numbers, pbc, ptr, ids=None):
        def array(name, value, dtype, shape):
            try:
                return np.ascontiguousarray(value, dtype=dtype).reshape(shape)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidArgumentError(f"StructureBatch: {name} cannot be read as {np.dtype(dtype).name} of shape "
                                           f"{tuple('N' if d == -1 else d for d in shape)}: {exc}") from None

        self.lattices = array("lattices", lattices, np.float64, (-1, 3, 3))
        self.frac_coords = array("frac_coords", frac_coords, np.float64, (-1, 3))
        self.numbers = array("numbers", numbers, np.int64, (-1,))
        self.pbc = array("pbc", pbc, bool, (-1, 3))
        self.ptr = array("ptr", ptr, np.int64, (-1,))
        n = len(self.lattices)
        self.ids = list(ids) if ids is not None else [None] * n
        if not (len(self.ptr) == n + 1 and len(self.pbc) == n and len(self.ids) == n):
            raise InvalidArgumentError("StructureBatch: lattices, pbc, ptr and ids describe different numbers of structures")
        if self.ptr[0] != 0 or self.ptr[-1] != len(self.numbers) or len(self.frac_coords) != len(self.numbers):
            raise InvalidArgumentError("StructureBatch: ptr does not match the number of sites")
        if np.any(np.diff(self.ptr) < 0):
            raise InvalidArgumentError("StructureBatch: ptr must be non-decreasing")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_structures(cls, items: Iterable[Any]) -> StructureBatch:
        """From pymatgen ``Structure``/``IStructure``, ASE ``Atoms`` or dicts with ``lattice``,
        ``species`` and ``frac_coords`` (or ``cart_coords``), in any mix."""
        lattices, fracs, numbers, pbcs, ids = [], [], [], [], []
        for k, item in enumerate(items):
            lat, frac, z, pbc, ident = _one(item, k)
            lattices.append(lat)
            fracs.append(frac)
            numbers.append(z)
            pbcs.append(pbc)
            ids.append(ident)
        counts = [len(z) for z in numbers]
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(
            np.array(lattices, dtype=np.float64).reshape(-1, 3, 3),
            np.concatenate(fracs) if fracs else np.zeros((0, 3)),
            np.concatenate(numbers) if numbers else np.zeros(0, np.int64),
            np.array(pbcs, dtype=bool).reshape(-1, 3),
            ptr,
            ids,
        )

    @classmethod
    def from_arrays(
        cls,
        lattice,
        coords,
        species,
        *,
        cartesian: bool = False,
        pbc: Union[bool, Sequence[bool]] = True,
        id: Optional[str] = None,
    ) -> StructureBatch:
        """One structure from a 3x3 lattice (rows a, b, c in angstrom), coordinates (fractional,
        or Cartesian in angstrom with ``cartesian=True``) and species (symbols or numbers)."""
        return cls.from_structures(
            [{"lattice": lattice, ("cart_coords" if cartesian else "frac_coords"): coords, "species": species, "pbc": pbc, "id": id}]
        )

    @classmethod
    def read(cls, path: Union[str, os.PathLike], format: Optional[str] = None, *, occupancy_policy: str = "error") -> StructureBatch:
        """Read CIF (all data blocks), POSCAR/CONTCAR, (extended) XYZ (all frames), JSON-lines
        (``.jsonl``/``.jsonl.gz``, one structure per line) or Parquet (columns ``lattice``,
        ``species``, ``frac_coords``, optional ``pbc`` and ``id``).

        ``occupancy_policy`` (CIF only): ``"error"`` refuses partially occupied or shared sites;
        ``"majority"`` keeps the species with the largest occupancy at each site as fully occupied.
        """
        path = Path(path)
        fmt = format or _guess_format(path)
        if fmt == "parquet":
            return cls.from_parquet(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            text = fh.read().decode("utf-8", errors="replace")
        return cls._from_dict(_core.parse_structures(text, fmt, str(path), occupancy_policy))

    @classmethod
    def from_string(cls, text: str, format: str, *, name: str = "<string>", occupancy_policy: str = "error") -> StructureBatch:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: not text any file could hold
            line = text.count("\n", 0, exc.start) + 1
            err = StructureParseError(f"{name}, line {line}: invalid unicode (lone surrogate)")
            err.file, err.line, err.reason = name, line, "invalid unicode (lone surrogate)"
            raise err from None
        return cls._from_dict(_core.parse_structures(text, format, name, occupancy_policy))

    @classmethod
    def from_parquet(cls, path, *, columns=("lattice", "species", "frac_coords")) -> StructureBatch:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        names = set(table.column_names)
        rows = table.select([c for c in (*columns, "pbc", "id") if c in names]).to_pylist()
        lat, sp, fc = columns
        return cls.from_structures(
            {"lattice": r[lat], "species": r[sp], "frac_coords": r[fc], "pbc": r.get("pbc"), "id": r.get("id")}
            for r in rows
        )

    @classmethod
    def _from_dict(cls, d) -> StructureBatch:
        return cls(d["lattices"], d["frac_coords"], d["numbers"], d["pbc"], d["ptr"], d["ids"])

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.lattices)

    def __repr__(self) -> str:
        return f"StructureBatch({len(self)} structures, {len(self.numbers)} sites)"

    @property
    def n_sites(self) -> np.ndarray:
        return np.diff(self.ptr)

    def cart_coords(self) -> np.ndarray:
        """Cartesian coordinates (N, 3) in angstrom, ``frac @ lattice`` per structure."""
        owner = np.repeat(np.arange(len(self)), self.n_sites)
        return np.einsum("nk,nkd->nd", self.frac_coords, self.lattices[owner])

    def select(self, indices) -> StructureBatch:
        """A new batch with the structures at ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        parts = [np.arange(self.ptr[s], self.ptr[s + 1]) for s in idx]
        sites = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        counts = self.n_sites[idx]
        ptr = np.concatenate([[0], np.cumsum(counts)])
        return StructureBatch(self.lattices[idx], self.frac_coords[sites], self.numbers[sites], self.pbc[idx], ptr, [self.ids[s] for s in idx])

    def to_pymatgen(self, index: int):
        """Structure ``index`` as a pymatgen ``Structure``."""
        from pymatgen.core import Lattice, Structure

        a, b = self.ptr[index], self.ptr[index + 1]
        px, py, pz = (bool(x) for x in self.pbc[index])
        lat = Lattice(self.lattices[index], pbc=(px, py, pz))
        # pymatgen accepts atomic numbers as species, though its annotation does not list int.
        return Structure(lat, [int(z) for z in self.numbers[a:b]], self.frac_coords[a:b])  # type: ignore[misc]

    def to_ase(self, index: int):
        from ase import Atoms

        a, b = self.ptr[index], self.ptr[index + 1]
        return Atoms(
            numbers=self.numbers[a:b],
            scaled_positions=self.frac_coords[a:b],
            cell=self.lattices[index],
            pbc=self.pbc[index],
        )

    def _ids(self):
        return None if all(i is None for i in self.ids) else [None if i is None else str(i) for i in self.ids]

    def _native(self) -> _core.Structures:
        """The batch as the one typed object the Rust functions take (layout checked there)."""
        return _core.Structures(self.lattices, self.frac_coords, self.numbers, self.pbc, self.ptr, self._ids())


def _guess_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if "poscar" in name or "contcar" in name:
        return "poscar"
    ext = os.path.splitext(name)[1]
    if ext in _FORMATS:
        return _FORMATS[ext]
    raise InvalidArgumentError(f"cannot tell the format of {path}; pass format='cif'|'poscar'|'xyz'|'jsonl'|'parquet'")


def _structure_error(k: int, reason: str) -> StructureError:
    err = StructureError(f"structure {k}: {reason}")
    err.index, err.name, err.reason = k, None, reason
    return err


def _float_array(value, k: int, what: str, shape) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _structure_error(k, f"{what} is not a {'x'.join(str(d) for d in shape).replace('-1', 'N')} array of numbers ({exc})") from None


def _species_numbers(species, k) -> np.ndarray:
    try:
        species = list(species)
    except TypeError:
        raise _structure_error(k, f"species must be a sequence, got {type(species).__name__}") from None
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in species):
        try:
            return np.asarray(species, dtype=np.int64)
        except OverflowError:
            raise _structure_error(k, "an atomic number is out of range") from None
    try:
        return _core.atomic_numbers([str(s) for s in species])
    except InvalidArgumentError as exc:
        raise _structure_error(k, str(exc)) from None


def _one(item, k):
    """(lattice, frac, numbers, pbc, id) of one pymatgen/ASE/dict structure."""
    if hasattr(item, "lattice") and hasattr(item, "frac_coords"):  # pymatgen Structure
        if not item.is_ordered:
            raise _structure_error(k, "disordered (partial occupancy) pymatgen structures are not supported")
        lat = np.asarray(item.lattice.matrix, dtype=np.float64)
        pbc = tuple(bool(x) for x in getattr(item.lattice, "pbc", (True, True, True)))
        z = np.array([site.specie.Z for site in item], dtype=np.int64)
        return lat, np.asarray(item.frac_coords, dtype=np.float64).reshape(-1, 3), z, pbc, None
    if hasattr(item, "get_scaled_positions") and hasattr(item, "cell"):  # ASE Atoms
        lat = np.asarray(item.cell.array, dtype=np.float64)
        pbc = tuple(bool(x) for x in item.pbc)
        z = np.asarray(item.numbers, dtype=np.int64)
        if abs(np.linalg.det(lat)) < 1e-12:
            if any(pbc):
                raise _structure_error(k, "periodic Atoms with a zero-volume cell")
            pos = item.positions
            span = (pos.max(0) - pos.min(0)) if len(pos) else np.zeros(3)
            lat = np.diag(span + 10.0)
        frac = np.linalg.solve(lat.T, np.asarray(item.positions, dtype=np.float64).T).T
        return lat, frac.reshape(-1, 3), z, pbc, None
    if isinstance(item, dict):
        missing = [key for key in ("lattice", "species") if key not in item]
        if item.get("frac_coords") is None and item.get("cart_coords") is None:
            missing.append("frac_coords or cart_coords")
        if missing:
            raise _structure_error(k, f"missing {', '.join(missing)}")
        lat = _float_array(item["lattice"], k, "lattice", (3, 3))
        z = _species_numbers(item["species"], k)
        if item.get("frac_coords") is not None:
            frac = _float_array(item["frac_coords"], k, "frac_coords", (-1, 3))
        else:
            cart = _float_array(item["cart_coords"], k, "cart_coords", (-1, 3))
            try:
                frac = np.linalg.solve(lat.T, cart.T).T if len(cart) else cart
            except np.linalg.LinAlgError:
                raise _structure_error(k, "the lattice is singular; Cartesian coordinates cannot be made fractional") from None
        pbc = item.get("pbc")
        if pbc is None:
            pbc = (True, True, True)
        elif np.ndim(pbc) == 0 and not isinstance(pbc, str):
            pbc = (bool(pbc),) * 3
        elif isinstance(pbc, str) or np.shape(pbc) != (3,):
            raise _structure_error(k, f"pbc must be a bool or three bools, got {pbc!r}")
        else:
            pbc = tuple(bool(x) for x in pbc)
        if len(frac) != len(z):
            raise _structure_error(k, f"{len(frac)} coordinates but {len(z)} species")
        return lat, frac, z, pbc, item.get("id")
    raise ArgumentTypeError(f"structure {k}: cannot read {type(item).__name__}; pass pymatgen Structure, ASE Atoms or a dict")


StructuresLike = Union[StructureBatch, Any]


def as_batch(structures: StructuresLike) -> StructureBatch:
    """Coerce a batch, one structure, a list of structures or a file path to a StructureBatch."""
    if isinstance(structures, StructureBatch):
        return structures
    if isinstance(structures, (str, os.PathLike)):
        return StructureBatch.read(structures)
    if isinstance(structures, dict) or hasattr(structures, "frac_coords") or hasattr(structures, "get_scaled_positions"):
        return StructureBatch.from_structures([structures])
    return StructureBatch.from_structures(structures)


def read_structures(path, format: Optional[str] = None, *, occupancy_policy: str = "error") -> StructureBatch:
    """Read a structure file; see :meth:`StructureBatch.read`."""
    return StructureBatch.read(path, format, occupancy_policy=occupancy_policy)


@dataclass
class NeighborList:
    """Pairs of a batch: ``i``, ``j`` local site indices (int64), ``shifts`` (E, 3) int32,
    ``distances`` (E,) float64 in angstrom, ``vectors`` (E, 3) ``r_j - r_i + S @ lattice`` or
    None, and ``edge_ptr`` (S + 1,): pairs of structure ``s`` are ``edge_ptr[s]:edge_ptr[s+1]``."""

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    distances: np.ndarray
    vectors: Optional[np.ndarray]
    edge_ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def of(self, s: int) -> NeighborList:
        """Pairs of structure ``s`` (views, no copy)."""
        a, b = self.edge_ptr[s], self.edge_ptr[s + 1]
        v = None if self.vectors is None else self.vectors[a:b]
        return NeighborList(self.i[a:b], self.j[a:b], self.shifts[a:b], self.distances[a:b], v, np.array([0, b - a], dtype=np.int64))


def neighbor_list(
    structures: StructuresLike,
    cutoff: float,
    *,
    vectors: bool = False,
    max_pairs: Optional[int] = None,
    min_distance: Optional[float] = 0.1,
    n_threads: Optional[int] = None,
) -> NeighborList:
    """Exact periodic neighbor list of every structure within ``cutoff`` angstrom.

    ``max_pairs`` bounds the pairs of any structure and of the whole batch: the job is refused
    (StructureError naming the structure) before memory is allocated when the estimate is far
    above it. ``min_distance`` (angstrom, default 0.1; None disables) refuses structures with
    overlapping atoms, naming the structure and the two atoms. ``n_threads`` defaults to ``MATXFER_NUM_THREADS`` or all cores; the output is the
    same for every thread count.
    """
    batch = as_batch(structures)
    d = _core.neighbor_list(batch._native(), cutoff, vectors, max_pairs, n_threads, min_distance)
    return NeighborList(d["i"], d["j"], d["shifts"], d["distances"], d.get("vectors"), d["edge_ptr"])


@dataclass
class VoronoiCells:
    """Voronoi cells of every site of a batch (periodic along a, b and c).

    One row per face, sites in order and structures in order: ``i`` the site (local index,
    int64), ``j`` the neighbor across the face (local index, int64), ``shifts`` (F, 3) int32 its
    image ``S`` (``r_ij = r_j - r_i + S @ lattice``), ``areas`` (F,) the face area in A^2,
    ``solid_angles`` (F,) the solid angle the face subtends at site ``i`` in steradian,
    ``distances`` (F,) ``|r_ij|`` in angstrom (the face lies at half that distance from the
    site). ``face_ptr`` (S + 1,): faces of structure ``s`` are ``face_ptr[s]:face_ptr[s + 1]``.
    ``volumes`` (N,) is the cell volume of every site in A^3 (sites as in the batch's ``ptr``);
    the volumes of a structure sum to its cell volume."""

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    areas: np.ndarray
    solid_angles: np.ndarray
    distances: np.ndarray
    volumes: np.ndarray
    face_ptr: np.ndarray
    site_ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    def of(self, s: int) -> VoronoiCells:
        """Faces and volumes of structure ``s`` (views, no copy)."""
        a, b = self.face_ptr[s], self.face_ptr[s + 1]
        u, v = self.site_ptr[s], self.site_ptr[s + 1]
        return VoronoiCells(
            self.i[a:b],
            self.j[a:b],
            self.shifts[a:b],
            self.areas[a:b],
            self.solid_angles[a:b],
            self.distances[a:b],
            self.volumes[u:v],
            np.array([0, b - a], dtype=np.int64),
            np.array([0, v - u], dtype=np.int64),
        )


def voronoi_cells(structures: StructuresLike, *, n_threads: Optional[int] = None) -> VoronoiCells:
    """Periodic Voronoi tessellation of every structure: the faces of each site's cell with
    their neighbor, image, area, solid angle and distance, and each site's volume.

    Cells are built by clipping a bounding cube with the bisector planes of the exact neighbor
    list, nearest first, until no farther neighbor can cut them (complete cells, any triclinic
    cell). Neighbors whose plane only touches a cell at a vertex or an edge have no face (pymatgen's
    ``VoronoiNN`` may list some of them with zero area). Structures must be periodic along a, b and
    c; a non-periodic structure, overlapping atoms or a job above the memory ceiling raise
    ``StructureError`` naming the structure. ``n_threads`` defaults to ``MATXFER_NUM_THREADS`` or
    all cores; the result is the same for every thread count.
    """
    batch = as_batch(structures)
    d = _core.voronoi(batch._native(), n_threads)
    return VoronoiCells(
        d["i"], d["j"], d["shifts"], d["areas"], d["solid_angles"], d["distances"], d["volumes"], d["face_ptr"], batch.ptr.copy()
    )


def effective_coordination_numbers(cells: VoronoiCells) -> np.ndarray:
    """``(N,)`` effective coordination number of every site (Ward et al., PRB 96, 014107, 2017):
    ``(sum_f w_f)^2 / sum_f w_f^2`` over the faces of the site's Voronoi cell with
    ``w_f = area_f / max area`` (matminer ``CoordinationNumber(VoronoiNN(weight="area"),
    use_weights="effective")``)."""
    n_sites = len(cells.volumes)
    owner = cells.site_ptr[np.repeat(np.arange(len(cells.face_ptr) - 1), np.diff(cells.face_ptr))] + cells.i
    largest = np.zeros(n_sites)
    np.maximum.at(largest, owner, cells.areas)
    w = cells.areas / largest[owner]
    total = np.bincount(owner, weights=w, minlength=n_sites)
    squares = np.bincount(owner, weights=w * w, minlength=n_sites)
    return total * total / squares


WARD_COORDINATION_FEATURES = (
    "minimum CN_VoronoiNN",
    "maximum CN_VoronoiNN",
    "range CN_VoronoiNN",
    "mean CN_VoronoiNN",
    "avg_dev CN_VoronoiNN",
)


def ward_coordination_features(structures: StructuresLike, *, n_threads: Optional[int] = None) -> np.ndarray:
    """``(S, 5)``: minimum, maximum, range, mean and mean absolute deviation over the sites of
    each structure of the effective coordination number (:func:`effective_coordination_numbers`),
    in the order and with the names (:data:`WARD_COORDINATION_FEATURES`) of matminer's
    ``SiteStatsFingerprint.from_preset("CoordinationNumber_ward-prb-2017")``, the coordination
    part of the Ward et al. 2017 structure features."""
    batch = as_batch(structures)
    cn = effective_coordination_numbers(voronoi_cells(batch, n_threads=n_threads))
    starts = batch.ptr[:-1]
    counts = np.diff(batch.ptr)
    lo = np.minimum.reduceat(cn, starts)
    hi = np.maximum.reduceat(cn, starts)
    mean = np.add.reduceat(cn, starts) / counts
    deviation = np.add.reduceat(np.abs(cn - np.repeat(mean, counts)), starts) / counts
    return np.column_stack([lo, hi, hi - lo, mean, deviation])


def density_features(structures: StructuresLike, *, n_threads: Optional[int] = None) -> np.ndarray:
    """``(S, 3)``: density (g/cm^3), volume per atom (A^3), packing fraction (atomic radii of the
    Magpie table; NaN where a radius is unknown), as matminer ``DensityFeatures``."""
    batch = as_batch(structures)
    return _core.density_features(batch._native(), n_threads)


def radial_distribution(
    structures: StructuresLike,
    cutoff: float = 20.0,
    bin_size: float = 0.1,
    *,
    partial: bool = False,
    elements: Optional[Sequence[Union[str, int]]] = None,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """Radial distribution functions on bins ``np.arange(0, cutoff + bin_size, bin_size)`` (the
    edges matminer uses), one row per structure.

    ``partial=False``: matminer ``RadialDistributionFunction`` (counts over all centers / shell
    volume / number density). ``partial=True``: matminer ``PartialRadialDistributionFunction``,
    blocks for element pairs ``(a, b)``, ``a <= b`` in the order of ``elements`` (default: all
    elements of the batch by increasing Z), each normalised by the shell volume and the count of
    ``a``.
    """
    batch = as_batch(structures)
    el = None
    if partial:
        if elements is None:
            el = sorted(set(int(z) for z in batch.numbers))
        else:
            el = [int(e) if isinstance(e, (int, np.integer)) else int(_core.atomic_numbers([str(e)])[0]) for e in elements]
    return _core.radial_distribution(batch._native(), cutoff, bin_size, el, n_threads)


def sine_coulomb_eigenvalues(structures: StructuresLike, n_max: Optional[int] = None, *, n_threads: Optional[int] = None) -> np.ndarray:
    """Eigenvalues of the sine Coulomb matrix (matminer ``SineCoulombMatrix``, flattened), sorted
    in decreasing order and zero-padded to ``n_max`` (default: the largest site count)."""
    batch = as_batch(structures)
    if n_max is None:
        n_max = int(batch.n_sites.max()) if len(batch) else 0
    return _core.sine_coulomb_eigenvalues(batch._native(), n_max, n_threads)


#: matminer ``GlobalSymmetryFeatures`` names, in matminer's order.
GLOBAL_SYMMETRY_FEATURES = ("spacegroup_num", "crystal_system", "crystal_system_int", "is_centrosymmetric", "n_symmetry_ops")


def global_symmetry_features(
    structures: StructuresLike,
    *,
    symprec: float = 0.01,
    n_threads: Optional[int] = None,
) -> dict[str, np.ndarray]:
    """matminer ``GlobalSymmetryFeatures`` for every structure, found by the Rust ``moyo`` crate.

    Returns ``{name: column}`` with matminer's names in its order: ``spacegroup_num`` (int64,
    International Tables number), ``crystal_system`` (object array of str: ``"cubic"``,
    ``"hexagonal"``, ``"trigonal"``, ``"tetragonal"``, ``"orthorhombic"``, ``"monoclinic"``,
    ``"triclinic"``), ``crystal_system_int`` (int64, matminer's code: cubic 1 ... triclinic 7),
    ``is_centrosymmetric`` (bool: the point group contains the inversion, which is what
    matminer's ``SpacegroupAnalyzer.is_laue()`` tests) and ``n_symmetry_ops`` (int64, the
    operations of the cell as given, pure translations of a supercell or centred cell included).

    ``symprec`` (angstrom) is pymatgen's ``SpacegroupAnalyzer`` default; the angle tolerance is
    moyo's default (spglib's default), not pymatgen's 5 degrees, with which moyo 0.22 never
    returns on some real structures (see ``docs/structures.md``). Every structure is treated as periodic, as in
    pymatgen. A structure for which moyo finds no group raises :class:`StructureError` naming
    it. Where moyo and spglib disagree at the same tolerance, see ``docs/structures.md``.
    """
    batch = as_batch(structures)
    numbers, systems, codes, centro, n_ops = _core.global_symmetry_features(batch._native(), symprec, n_threads)
    return {
        "spacegroup_num": numbers,
        "crystal_system": np.array(systems, dtype=object),
        "crystal_system_int": codes,
        "is_centrosymmetric": centro,
        "n_symmetry_ops": n_ops,
    }


__all__ = [
    "GLOBAL_SYMMETRY_FEATURES",
    "global_symmetry_features",
    "density_features",
    "radial_distribution",
    "sine_coulomb_eigenvalues",
    "NeighborList",
    "StructureBatch",
    "StructureError",
    "StructureParseError",
    "as_batch",
    "neighbor_list",
    "read_structures",
    "VoronoiCells",
    "voronoi_cells",
    "WARD_COORDINATION_FEATURES",
    "effective_coordination_numbers",
    "ward_coordination_features",
]

from matxfer.structure_presets import STRUCTURE_PRESETS, featurize_structures, structure_feature_names  # noqa: E402

__all__ += ["STRUCTURE_PRESETS", "featurize_structures", "structure_feature_names"]


def __getattr__(name: str) -> Any:
    # CrystalNN and BondFractions live in matxfer.local_env, Ewald and OFM in matxfer.ionic; both import
    # this module, so their functions are re-exported here lazily.
    if name in ("crystal_nn", "CrystalNNResult", "BondFractions", "crystal_nn_fingerprint", "site_stats_crystal_nn_ops"):
        from matxfer import local_env

        return getattr(local_env, name)
    if name in ("ewald_energy", "orbital_field_matrix"):
        from matxfer import ionic

        return getattr(ionic, name)
    if name == "soap":
        from matxfer import soap

        return soap.soap
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from matxfer.order_params import CRYSTALNN_OPS, order_parameters  # noqa: E402, F401  (re-export; docs/order_parameters.md)
