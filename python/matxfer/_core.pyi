# Type stub of the compiled extension module matxfer._core (rust/matxfer-py). Private: use the
# public API in matxfer/__init__.py.
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

__version__: str

Rejected = tuple[int, str, str]

class Featurizer:
    @staticmethod
    def preset(name: str, impute_nan: Optional[bool] = None) -> Featurizer: ...
    @staticmethod
    def from_table(
        name: str,
        values: npt.NDArray[np.float64],
        columns: list[str],
        stats: list[str],
        missing: str,
    ) -> Featurizer: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def n_features(self) -> int: ...
    def featurize_list(
        self,
        formulas: list[object],
        errors: str = "raise",
        n_threads: Optional[int] = None,
        float32: bool = False,
    ) -> tuple[npt.NDArray[np.floating], list[Rejected]]: ...
    def featurize_arrow(
        self,
        data: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        validity: Optional[npt.NDArray[np.uint8]] = None,
        validity_offset: int = 0,
        errors: str = "raise",
        n_threads: Optional[int] = None,
        float32: bool = False,
    ) -> tuple[npt.NDArray[np.floating], list[Rejected]]: ...

def parse_formula(formula: str) -> dict[str, float]: ...

# Oxidation-state guesses (pymatgen oxi_state_guesses semantics): per row None (rejected with
# errors="none") or [(guess {symbol: average state}, score), ...] best first.
def guess_oxidation_states(
    formulas: list[Any],
    all_guesses: bool = False,
    target_charge: float = 0.0,
    all_oxi_states: bool = False,
    max_work: int = ...,
    max_guesses: int = ...,
    errors: str = "raise",
    n_threads: Optional[int] = None,
) -> tuple[list[Optional[list[tuple[dict[str, float], float]]]], list[Rejected]]: ...
def element_tables() -> list[tuple[str, str]]: ...
def element_table(name: str) -> tuple[npt.NDArray[np.float64], list[str]]: ...

# --- crystal structures (rust/matxfer-py/src/structures.rs) ---
# A StructureBatch crosses as one typed object, Structures, built from its flat arrays:
# lattices (S, 3, 3) float64, frac_coords (N, 3) float64, numbers (N,) int64, pbc (S, 3) bool,
# ptr (S + 1,) int64, ids (S,) or None. The layout is checked once there.

class Structures:
    def __init__(
        self,
        lattices: npt.NDArray[np.float64],
        frac_coords: npt.NDArray[np.float64],
        numbers: npt.NDArray[np.int64],
        pbc: npt.NDArray[np.bool_],
        ptr: npt.NDArray[np.int64],
        ids: Optional[list[Optional[str]]] = None,
    ) -> None: ...
    def __len__(self) -> int: ...

def parse_structures(text: str, format: str, file: str = "<string>", occupancy_policy: str = "error") -> dict[str, Any]: ...
def atomic_numbers(symbols: list[str]) -> npt.NDArray[np.int64]: ...
def neighbor_list(
    structures: Structures,
    cutoff: float,
    vectors: bool = False,
    max_pairs: Optional[int] = None,
    n_threads: Optional[int] = None,
    min_distance: Optional[float] = None,
) -> dict[str, npt.NDArray[Any]]: ...
def voronoi(structures: Structures, n_threads: Optional[int] = None) -> dict[str, npt.NDArray[Any]]: ...
def crystal_nn(
    structures: Structures,
    distance_cutoffs: Optional[tuple[float, float]],
    x_diff_weight: float,
    porous_adjustment: bool,
    search_cutoff: float,
    n_threads: Optional[int] = None,
) -> dict[str, npt.NDArray[Any]]: ...
def crystal_nn_fingerprint(structures: Structures, n_threads: Optional[int] = None) -> tuple[npt.NDArray[np.float64], list[str]]: ...
def order_parameters(
    structures: Structures,
    i: npt.NDArray[np.int64],
    j: npt.NDArray[np.int64],
    shifts: npt.NDArray[np.int32],
    pair_ptr: npt.NDArray[np.int64],
    types: list[tuple[str, Optional[list[tuple[str, float]]]]],
    n_threads: Optional[int] = None,
) -> npt.NDArray[np.float64]: ...
def crystalnn_ops() -> list[tuple[int, str, str, dict[str, float]]]: ...
def order_parameter_types() -> list[str]: ...
def build_graph_batch(
    structures: Structures,
    cutoff: float,
    selection: str = "radius",
    k: Optional[int] = None,
    tie_tolerance: float = 1e-6,
    cutoff_step: float = 1.0,
    max_cutoff: float = 16.0,
    few_neighbors: str = "keep",
    rbf: Optional[tuple[float, float, int, Optional[float]]] = None,
    three_body_cutoff: Optional[float] = None,
    vectors: bool = False,
    max_edges: Optional[int] = None,
    n_threads: Optional[int] = None,
    rbf_float32: bool = False,
    min_distance: Optional[float] = None,
) -> dict[str, npt.NDArray[Any]]: ...
def density_features(structures: Structures, n_threads: Optional[int] = None) -> npt.NDArray[np.float64]: ...
def radial_distribution(
    structures: Structures,
    cutoff: float,
    bin_size: float,
    elements: Optional[list[int]] = None,
    n_threads: Optional[int] = None,
) -> npt.NDArray[np.float64]: ...
def sine_coulomb_eigenvalues(structures: Structures, n_max: int, n_threads: Optional[int] = None) -> npt.NDArray[np.float64]: ...
def global_symmetry_features(
    structures: Structures,
    symprec: float = 0.01,
    n_threads: Optional[int] = None,
) -> tuple[
    npt.NDArray[np.int64], list[str], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
]: ...

# Ward et al. 2017 structure preset (rust/matxfer-py/src/ward2017.rs)
def ward2017_features(
    structures: Structures,
    symprec: float = 0.01,
    raise_errors: bool = True,
    n_threads: Optional[int] = None,
) -> tuple[npt.NDArray[np.float64], list[tuple[int, str]]]: ...
def ward2017_feature_names() -> list[str]: ...
# Ionic descriptors (rust/matxfer-py/src/ionic.rs)
def ewald_energy(
    structures: Structures,
    oxidation_states: Optional[npt.NDArray[np.float64]] = None,
    accuracy: Optional[float] = None,
    eta: Optional[float] = None,
    real_space_cut: Optional[float] = None,
    recip_space_cut: Optional[float] = None,
    max_work: int = 10_000_000,
    no_guess: str = "zero",
    n_threads: Optional[int] = None,
) -> dict[str, npt.NDArray[np.float64]]: ...
def orbital_field_matrix(
    structures: Structures,
    period_tag: bool = False,
    site_average: str = "symmetry",
    symprec: float = 0.01,
    flavour: str = "matminer",
    n_threads: Optional[int] = None,
) -> tuple[npt.NDArray[np.float64], list[str]]: ...
# Bond-valence oxidation states (pymatgen BVAnalyzer): per-site int32 states (0 on the sites of a
# failed structure) and the (index, reason) of the failed structures
def bond_valence_states(
    structures: Structures,
    symprec: Optional[float] = None,
    max_radius: Optional[float] = None,
    distance_scale_factor: Optional[float] = None,
    max_permutations: Optional[int] = None,
    raise_errors: bool = True,
    n_threads: Optional[int] = None,
) -> tuple[npt.NDArray[np.int32], list[tuple[int, str]]]: ...

# SOAP (rust/matxfer-py/src/soap.rs)
def soap(
    structures: Structures,
    species: list[int],
    r_cut: float,
    n_max: int,
    l_max: int,
    sigma: Optional[float] = None,
    average: str = "off",
    periodic: bool = True,
    n_threads: Optional[int] = None,
) -> tuple[npt.NDArray[np.float64], list[str]]: ...

# Molecular graphs (rust/matxfer-py/src/molecules.rs)
def build_molecule_graph_batch(
    atom_ptr: npt.NDArray[np.int64],
    numbers: npt.NDArray[np.int64],
    radii: npt.NDArray[np.float64],
    bond_ptr: npt.NDArray[np.int64],
    bonds: npt.NDArray[np.int64],
    bond_types: npt.NDArray[np.uint8],
    bond_flags: npt.NDArray[np.uint8],
    positions: Optional[npt.NDArray[np.float64]] = None,
    n_threads: Optional[int] = None,
) -> dict[str, npt.NDArray[Any]]: ...
def molecule_edge_features() -> list[str]: ...
