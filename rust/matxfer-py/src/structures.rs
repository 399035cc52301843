//! Bindings for crystal structures: parsing, neighbor lists, batched graphs, descriptors.
//!
//! Structures cross the boundary as one typed object, [`PyStructures`] (`matxfer._core.Structures`),
//! built once from the flat arrays of a `StructureBatch` (`lattices (S, 3, 3)`, `frac_coords (N, 3)`,
//! `numbers (N,)`, `pbc (S, 3)`, `ptr (S + 1,)`, `ids`); its layout is checked there, the
//! structures themselves by the core. Outputs are numpy arrays that take ownership of the Rust
//! buffers (no copy).

use matxfer_core::graph::{build_graphs, FewNeighbors, GraphOptions, Rbf, SelectionKind};
use matxfer_core::limits::{check_output_bytes, MAX_K, MAX_RBF};
use matxfer_core::neighbors::{neighbor_list_batch_with, NeighborOptions};
use matxfer_core::structure::cif::{parse_cif, CifOptions, OccupancyPolicy};
use matxfer_core::structure::{jsonl, poscar, xyz, Structure, StructureBatch};
use matxfer_core::structure_descriptors as desc;
use matxfer_core::voronoi::voronoi_batch;
use matxfer_core::CoreError;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args;
use crate::errors::{detach_core, invalid_argument, to_py_err};

/// Run core work with the GIL released; errors and panics become `matxfer.exceptions` classes.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    detach_core(py, f)
}

fn core<T>(py: Python<'_>, r: Result<T, CoreError>) -> PyResult<T> {
    r.map_err(|e| to_py_err(py, e))
}

fn arr<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Bound<'py, PyArray1<T>> {
    PyArray1::from_vec(py, v)
}

fn arr2<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, cols: usize) -> PyResult<Bound<'py, PyAny>> {
    let rows = v.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_vec(py, v).reshape([rows, cols])?.into_any())
}

/// A batch of structures owned by Rust, built once from the flat arrays of a `StructureBatch`.
#[pyclass(name = "Structures", module = "matxfer._core", frozen)]
pub struct PyStructures {
    pub(crate) inner: Vec<Structure>,
}

#[pymethods]
impl PyStructures {
    #[new]
    #[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, ids = None))]
    fn new(
        py: Python<'_>,
        lattices: PyReadonlyArray3<f64>,
        frac_coords: PyReadonlyArray2<f64>,
        numbers: PyReadonlyArray1<i64>,
        pbc: PyReadonlyArray2<bool>,
        ptr: PyReadonlyArray1<i64>,
        ids: Option<Vec<Option<String>>>,
    ) -> PyResult<Self> {
        let contiguous = |what: &str| invalid_argument(py, format!("{what} must be a C-contiguous array"));
        let l = lattices.as_slice().map_err(|_| contiguous("lattices"))?;
        let f = frac_coords.as_slice().map_err(|_| contiguous("frac_coords"))?;
        let z = numbers.as_slice().map_err(|_| contiguous("numbers"))?;
        let p = pbc.as_slice().map_err(|_| contiguous("pbc"))?;
        let o = ptr.as_slice().map_err(|_| contiguous("ptr"))?;
        let n_s = o.len().saturating_sub(1);
        if l.len() != 9 * n_s
            || p.len() != 3 * n_s
            || f.len() != 3 * z.len()
            || o.first() != Some(&0)
            || o.last().copied() != Some(z.len() as i64)
            || ids.as_ref().is_some_and(|v| v.len() != n_s)
        {
            return Err(invalid_argument(
                py,
                "inconsistent structure arrays (lattices, frac_coords, numbers, pbc, ptr, ids)".into(),
            ));
        }
        let mut inner = Vec::with_capacity(n_s);
        for s in 0..n_s {
            let (a, b) = (o[s], o[s + 1]);
            if a > b {
                return Err(invalid_argument(py, format!("ptr must be non-decreasing (structure {s})")));
            }
            let (a, b) = (a as usize, b as usize);
            let lat = [
                [l[9 * s], l[9 * s + 1], l[9 * s + 2]],
                [l[9 * s + 3], l[9 * s + 4], l[9 * s + 5]],
                [l[9 * s + 6], l[9 * s + 7], l[9 * s + 8]],
            ];
            let coords = (a..b).map(|k| [f[3 * k], f[3 * k + 1], f[3 * k + 2]]).collect();
            // Out-of-range numbers become 0 so validation reports them with the structure index.
            let nums = z[a..b].iter().map(|&x| if (1..=118).contains(&x) { x as u8 } else { 0 }).collect();
            let mut one = Structure::new(lat, coords, nums, [p[3 * s], p[3 * s + 1], p[3 * s + 2]]);
            one.id = ids.as_ref().and_then(|v| v[s].clone());
            inner.push(one);
        }
        Ok(Self { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("Structures({} structures)", self.inner.len())
    }
}

/// Parse structure text (`cif`, `poscar`, `xyz`/`extxyz`, `jsonl`) into flat arrays.
#[pyfunction]
#[pyo3(signature = (text, format, file = "<string>", occupancy_policy = "error"))]
fn parse_structures<'py>(
    py: Python<'py>,
    text: String,
    format: &str,
    file: &str,
    occupancy_policy: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let policy = match occupancy_policy {
        "error" => OccupancyPolicy::Error,
        "majority" => OccupancyPolicy::Majority,
        o => return Err(invalid_argument(py, format!("occupancy_policy must be 'error' or 'majority', got {o:?}"))),
    };
    let (format, file) = (format.to_ascii_lowercase(), file.to_string());
    let structures = run(py, || match format.as_str() {
        "cif" => parse_cif(&text, &file, &CifOptions { occupancy_policy: policy, ..Default::default() }),
        "poscar" | "vasp" | "contcar" => poscar::parse_poscar(&text, &file).map(|s| vec![s]),
        "xyz" | "extxyz" => xyz::parse_xyz(&text, &file),
        "jsonl" | "json-lines" => jsonl::parse_jsonl(&text, &file),
        other => Err(CoreError::InvalidArgument(format!("unknown structure format {other:?}"))),
    })?;
    let b = StructureBatch::from_structures(structures);
    let d = PyDict::new(py);
    let n_s = b.len();
    d.set_item(
        "lattices",
        arr(py, b.lattices.iter().flatten().flatten().copied().collect::<Vec<f64>>()).reshape([n_s, 3, 3])?,
    )?;
    d.set_item("frac_coords", arr2(py, b.frac_coords.iter().flatten().copied().collect::<Vec<f64>>(), 3)?)?;
    d.set_item("numbers", arr(py, b.numbers.iter().map(|&z| z as i64).collect::<Vec<i64>>()))?;
    d.set_item("pbc", arr2(py, b.pbc.iter().flatten().copied().collect::<Vec<bool>>(), 3)?)?;
    d.set_item("ptr", arr(py, b.ptr.iter().map(|&x| x as i64).collect::<Vec<i64>>()))?;
    d.set_item("ids", b.ids)?;
    Ok(d)
}

/// Neighbor lists of a batch: `i, j` (local indices), `shifts (E, 3)`, `distances`, optional
/// `vectors (E, 3)` and `edge_ptr (S + 1)`.
#[pyfunction]
#[pyo3(signature = (structures, cutoff, vectors = false, max_pairs = None, n_threads = None, min_distance = None))]
fn neighbor_list<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    cutoff: &Bound<'py, PyAny>,
    vectors: bool,
    max_pairs: Option<&Bound<'py, PyAny>>,
    n_threads: Option<&Bound<'py, PyAny>>,
    min_distance: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = NeighborOptions {
        cutoff: args::real(py, cutoff, "cutoff")?,
        vectors,
        max_pairs: args::count(py, max_pairs, "max_pairs", 0, usize::MAX / 4)?,
        min_distance: match min_distance.filter(|m| !m.is_none()) {
            Some(m) => args::real(py, m, "min_distance")?,
            None => 0.0,
        },
        extra_bytes_per_pair: 0,
        limit_name: "max_pairs",
    };
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let out = run(py, || neighbor_list_batch_with(list, &opts, n_threads))?;
    let mut p = out.pairs;
    let (shifts, vecs) = (p.take_flat_shifts(), p.take_flat_vectors());
    let d = PyDict::new(py);
    d.set_item("i", arr(py, p.i))?;
    d.set_item("j", arr(py, p.j))?;
    d.set_item("shifts", arr2(py, shifts, 3)?)?;
    d.set_item("distances", arr(py, p.distances))?;
    if vectors {
        d.set_item("vectors", arr2(py, vecs, 3)?)?;
    }
    d.set_item("edge_ptr", arr(py, out.edge_ptr.into_iter().map(|x| x as i64).collect::<Vec<i64>>()))?;
    Ok(d)
}

/// Voronoi cells of every site: faces `i, j` (local indices), `shifts (F, 3)`, `areas`,
/// `solid_angles`, `distances`, `face_ptr (S + 1)`, and `volumes (N,)` per site.
#[pyfunction]
#[pyo3(signature = (structures, n_threads = None))]
fn voronoi<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let out = run(py, || voronoi_batch(list, n_threads))?;
    let d = PyDict::new(py);
    d.set_item("i", arr(py, out.i))?;
    d.set_item("j", arr(py, out.j))?;
    d.set_item("shifts", arr2(py, matxfer_core::neighbors::flatten3(out.shifts), 3)?)?;
    d.set_item("areas", arr(py, out.areas))?;
    d.set_item("solid_angles", arr(py, out.solid_angles))?;
    d.set_item("distances", arr(py, out.distances))?;
    d.set_item("volumes", arr(py, out.volumes))?;
    d.set_item("face_ptr", arr(py, out.face_ptr.into_iter().map(|x| x as i64).collect::<Vec<i64>>()))?;
    Ok(d)
}

/// `(start, stop, n, width)` of a Gaussian basis, each checked.
fn rbf_arg(py: Python<'_>, rbf: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Rbf>> {
    let Some(t) = rbf.filter(|r| !r.is_none()) else {
        return Ok(None);
    };
    let (start, stop, n, width): (Bound<PyAny>, Bound<PyAny>, Bound<PyAny>, Bound<PyAny>) = t.extract()?;
    Ok(Some(Rbf {
        start: args::real(py, &start, "rbf start")?,
        stop: args::real(py, &stop, "rbf stop")?,
        n: args::count(py, Some(&n), "rbf (number of basis functions)", 1, MAX_RBF)?.unwrap_or(1),
        width: if width.is_none() { None } else { Some(args::real(py, &width, "rbf width")?) },
    }))
}

/// Batched graphs; see `matxfer.graphs.build_graphs` for the meaning of every option.
#[pyfunction]
#[pyo3(signature = (structures, cutoff, selection = "radius", k = None, tie_tolerance = 1e-6,
    cutoff_step = 1.0, max_cutoff = 16.0, few_neighbors = "keep", rbf = None, three_body_cutoff = None, vectors = false,
    max_edges = None, n_threads = None, rbf_float32 = false, min_distance = None))]
#[allow(clippy::too_many_arguments)]
fn build_graph_batch<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    cutoff: &Bound<'py, PyAny>,
    selection: &str,
    k: Option<&Bound<'py, PyAny>>,
    tie_tolerance: f64,
    cutoff_step: f64,
    max_cutoff: f64,
    few_neighbors: &str,
    rbf: Option<&Bound<'py, PyAny>>,
    three_body_cutoff: Option<&Bound<'py, PyAny>>,
    vectors: bool,
    max_edges: Option<&Bound<'py, PyAny>>,
    n_threads: Option<&Bound<'py, PyAny>>,
    rbf_float32: bool,
    min_distance: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind: SelectionKind = core(py, selection.parse())?;
    let k = args::count(py, k, "k", 1, MAX_K)?.unwrap_or(12);
    let three_body_cutoff = match three_body_cutoff.filter(|t| !t.is_none()) {
        Some(t) => Some(args::real(py, t, "three_body_cutoff")?),
        None => None,
    };
    let opts = GraphOptions {
        cutoff: args::real(py, cutoff, "cutoff")?,
        selection: kind.with(k, tie_tolerance, cutoff_step, max_cutoff),
        few_neighbors: core::<FewNeighbors>(py, few_neighbors.parse())?,
        rbf: rbf_arg(py, rbf)?,
        three_body_cutoff,
        want_vectors: vectors,
        max_edges: args::count(py, max_edges, "max_edges", 0, usize::MAX / 4)?,
        rbf_float32,
        min_distance: match min_distance.filter(|m| !m.is_none()) {
            Some(m) => args::real(py, m, "min_distance")?,
            None => 0.0,
        },
    };
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let g = run(py, || build_graphs(list, &opts, n_threads))?;
    let d = PyDict::new(py);
    let n_edges = g.distances.len();
    d.set_item("numbers", arr(py, g.numbers))?;
    d.set_item("edge_index", arr(py, g.edge_index).reshape([2, n_edges])?)?;
    d.set_item("shifts", arr2(py, g.shifts, 3)?)?;
    d.set_item("distances", arr(py, g.distances))?;
    if vectors {
        d.set_item("vectors", arr2(py, g.vectors, 3)?)?;
    }
    if g.n_rbf > 0 {
        if rbf_float32 {
            d.set_item("rbf", arr2(py, g.rbf_f32, g.n_rbf)?)?;
        } else {
            d.set_item("rbf", arr2(py, g.rbf, g.n_rbf)?)?;
        }
    }
    d.set_item("node_graph", arr(py, g.node_graph))?;
    d.set_item("graph_ptr", arr(py, g.graph_ptr))?;
    d.set_item("edge_ptr", arr(py, g.edge_ptr))?;
    if opts.three_body_cutoff.is_some() {
        let n_t = g.triplet_cos.len();
        d.set_item("triplet_index", arr(py, g.triplet_index).reshape([2, n_t])?)?;
        d.set_item("triplet_cos", arr(py, g.triplet_cos))?;
        d.set_item("triplet_ptr", arr(py, g.triplet_ptr))?;
    }
    Ok(d)
}

/// Refuse a `rows x width` float64 descriptor output above the memory budget (before computing).
fn check_rows(py: Python<'_>, rows: usize, width: usize) -> PyResult<()> {
    core(py, check_output_bytes(rows as f64 * width as f64 * 8.0, || format!("a {rows} x {width} descriptor matrix")))
}

fn rows<'py>(py: Python<'py>, rows: Vec<Vec<f64>>, width: usize) -> PyResult<Bound<'py, PyAny>> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        let k = flat.len();
        flat.extend(r.into_iter().take(width));
        flat.resize(k + width, 0.0);
    }
    arr2(py, flat, width)
}

/// Density (g/cm^3), volume per atom (A^3) and packing fraction, `(S, 3)`.
#[pyfunction]
#[pyo3(signature = (structures, n_threads = None))]
fn density_features<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let out = run(py, || desc::batch(list, n_threads, |s, k| desc::density_features(s, k).map(|r| r.to_vec())))?;
    rows(py, out, 3)
}

/// (Partial) radial distribution functions on the bins `arange(0, cutoff + bin_size, bin_size)`;
/// partial when `elements` is given.
#[pyfunction]
#[pyo3(signature = (structures, cutoff, bin_size, elements = None, n_threads = None))]
fn radial_distribution<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    cutoff: &Bound<'py, PyAny>,
    bin_size: &Bound<'py, PyAny>,
    elements: Option<Vec<i64>>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let edges = core(py, desc::rdf_edges(args::real(py, cutoff, "cutoff")?, args::real(py, bin_size, "bin_size")?))?;
    let n_threads = args::threads(py, n_threads)?;
    let elements: Option<Vec<u8>> = match elements {
        Some(e) => Some(
            e.iter()
                .map(|&z| {
                    u8::try_from(z)
                        .ok()
                        .filter(|z| (1..=118).contains(z))
                        .ok_or_else(|| invalid_argument(py, format!("elements: {z} is not an atomic number (1..118)")))
                })
                .collect::<PyResult<_>>()?,
        ),
        None => None,
    };
    let n_bins = edges.len() - 1;
    let width = match &elements {
        Some(e) => e.len() * (e.len() + 1) / 2 * n_bins,
        None => n_bins,
    };
    let list = &structures.get().inner;
    check_rows(py, list.len(), width)?;
    let out = run(py, || match &elements {
        Some(e) => desc::batch(list, n_threads, |s, k| desc::partial_radial_distribution(s, k, &edges, e)),
        None => desc::batch(list, n_threads, |s, k| desc::radial_distribution(s, k, &edges)),
    })?;
    rows(py, out, width)
}

/// Sine Coulomb matrix eigenvalues, decreasing, zero-padded to `n_max` columns.
#[pyfunction]
#[pyo3(signature = (structures, n_max, n_threads = None))]
fn sine_coulomb_eigenvalues<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    n_max: &Bound<'py, PyAny>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_max = args::count(py, Some(n_max), "n_max", 0, matxfer_core::limits::MAX_SINE_COULOMB_SITES)?.unwrap_or(0);
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    check_rows(py, list.len(), n_max)?;
    let out = run(py, || desc::batch(list, n_threads, desc::sine_coulomb_eigenvalues))?;
    rows(py, out, n_max)
}

/// matminer `GlobalSymmetryFeatures` through moyo: `(spacegroup_num int64, crystal_system
/// list[str], crystal_system_int int64, is_centrosymmetric bool, n_symmetry_ops int64)`.
#[pyfunction]
#[pyo3(signature = (structures, symprec = 0.01, n_threads = None))]
#[allow(clippy::type_complexity)]
fn global_symmetry_features<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    symprec: f64,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Vec<&'static str>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<i64>>,
)> {
    core(py, desc::check_symprec(symprec))?;
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let out = run(py, || desc::batch(list, n_threads, |s, k| desc::global_symmetry(s, k, symprec)))?;
    Ok((
        arr(py, out.iter().map(|g| g.spacegroup_num as i64).collect()),
        out.iter().map(|g| g.crystal_system).collect(),
        arr(py, out.iter().map(|g| g.crystal_system_int as i64).collect()),
        arr(py, out.iter().map(|g| g.is_centrosymmetric).collect()),
        arr(py, out.iter().map(|g| g.n_symmetry_ops as i64).collect()),
    ))
}

/// Atomic numbers of element symbols (exact symbols such as `Fe`; an unknown one raises
/// `InvalidArgumentError` naming the site).
#[pyfunction]
fn atomic_numbers<'py>(py: Python<'py>, symbols: Vec<String>) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let mut out = Vec::with_capacity(symbols.len());
    for (k, s) in symbols.iter().enumerate() {
        let z = matxfer_core::elements::z_from_symbol(s.trim())
            .ok_or_else(|| invalid_argument(py, format!("site {k}: unknown species {s:?}")))?;
        out.push(z as i64);
    }
    Ok(arr(py, out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStructures>()?;
    m.add_function(wrap_pyfunction!(parse_structures, m)?)?;
    m.add_function(wrap_pyfunction!(atomic_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(density_features, m)?)?;
    m.add_function(wrap_pyfunction!(radial_distribution, m)?)?;
    m.add_function(wrap_pyfunction!(sine_coulomb_eigenvalues, m)?)?;
    m.add_function(wrap_pyfunction!(global_symmetry_features, m)?)?;
    m.add_function(wrap_pyfunction!(neighbor_list, m)?)?;
    m.add_function(wrap_pyfunction!(voronoi, m)?)?;
    m.add_function(wrap_pyfunction!(build_graph_batch, m)?)?;
    Ok(())
}
