//! Bindings for crystal structures: parsing, neighbor lists, batched graphs, descriptors.
//!
//! Structures cross the boundary as flat arrays: `lattices (S, 3, 3)`, `frac_coords (N, 3)`,
//! `numbers (N,)`, `pbc (S, 3)` and `ptr (S + 1,)` site offsets. Outputs are numpy arrays that
//! take ownership of the Rust buffers (no copy).

use matxfer_core::graph::{build_graphs, EdgeSelection, FewNeighbors, GraphOptions, Rbf};
use matxfer_core::neighbors::cell_list::neighbor_list_batch_checked;
use matxfer_core::structure::cif::{parse_cif, CifOptions, OccupancyPolicy};
use matxfer_core::structure::{jsonl, poscar, xyz, Structure, StructureBatch};
use matxfer_core::structure_descriptors as desc;
use matxfer_core::CoreError;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Run core work with the GIL released; errors and panics become `matxfer.exceptions` classes.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    crate::errors::detach_core(py, f)
}

fn arr<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Bound<'py, PyArray1<T>> {
    PyArray1::from_vec(py, v)
}

fn arr2<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, cols: usize) -> PyResult<Bound<'py, PyAny>> {
    let rows = v.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_vec(py, v).reshape([rows, cols])?.into_any())
}

/// Rebuild owned structures from flat arrays (validated later by the core).
fn structures_from_arrays(
    lattices: PyReadonlyArray3<f64>,
    frac: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    ids: Option<Vec<Option<String>>>,
) -> PyResult<Vec<Structure>> {
    let (l, f, z, p, o) =
        (lattices.as_slice()?, frac.as_slice()?, numbers.as_slice()?, pbc.as_slice()?, ptr.as_slice()?);
    let n_s = o.len().saturating_sub(1);
    if l.len() != 9 * n_s
        || p.len() != 3 * n_s
        || f.len() != 3 * z.len()
        || o.first() != Some(&0)
        || o.last().map(|&x| x as usize) != Some(z.len())
    {
        return Err(PyValueError::new_err("inconsistent structure arrays (lattices, frac_coords, numbers, pbc, ptr)"));
    }
    let mut out = Vec::with_capacity(n_s);
    for s in 0..n_s {
        let (a, b) = (o[s] as usize, o[s + 1] as usize);
        if a > b || b > z.len() {
            return Err(PyValueError::new_err("ptr must be non-decreasing"));
        }
        let lat = [
            [l[9 * s], l[9 * s + 1], l[9 * s + 2]],
            [l[9 * s + 3], l[9 * s + 4], l[9 * s + 5]],
            [l[9 * s + 6], l[9 * s + 7], l[9 * s + 8]],
        ];
        let coords = (a..b).map(|k| [f[3 * k], f[3 * k + 1], f[3 * k + 2]]).collect();
        // Out-of-range numbers become 0 so validation reports them with the structure index.
        let nums = z[a..b].iter().map(|&x| if (1..=118).contains(&x) { x as u8 } else { 0 }).collect();
        let mut one = Structure::new(lat, coords, nums, [p[3 * s], p[3 * s + 1], p[3 * s + 2]]);
        one.id = ids.as_ref().and_then(|v| v.get(s).cloned().flatten());
        out.push(one);
    }
    Ok(out)
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
        o => return Err(PyValueError::new_err(format!("occupancy_policy must be 'error' or 'majority', got {o:?}"))),
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
#[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, cutoff, vectors = false, max_pairs = None, n_threads = None, ids = None, min_distance = 0.0))]
#[allow(clippy::too_many_arguments)]
fn neighbor_list<'py>(
    py: Python<'py>,
    lattices: PyReadonlyArray3<f64>,
    frac_coords: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    cutoff: f64,
    vectors: bool,
    max_pairs: Option<usize>,
    n_threads: Option<usize>,
    ids: Option<Vec<Option<String>>>,
    min_distance: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let structures = structures_from_arrays(lattices, frac_coords, numbers, pbc, ptr, ids)?;
    let out =
        run(py, || neighbor_list_batch_checked(&structures, cutoff, vectors, max_pairs, min_distance, n_threads))?;
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

/// Batched graphs; see `matxfer.graphs.build_graphs` for the meaning of every option.
#[pyfunction]
#[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, cutoff, selection = "radius", k = 12, tie_tolerance = 1e-6,
    cutoff_step = 1.0, max_cutoff = 16.0, few_neighbors = "keep", rbf = None, three_body_cutoff = None, vectors = false,
    max_edges = None, n_threads = None, ids = None, rbf_float32 = false, min_distance = 0.0))]
#[allow(clippy::too_many_arguments)]
fn build_graph_batch<'py>(
    py: Python<'py>,
    lattices: PyReadonlyArray3<f64>,
    frac_coords: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    cutoff: f64,
    selection: &str,
    k: usize,
    tie_tolerance: f64,
    cutoff_step: f64,
    max_cutoff: f64,
    few_neighbors: &str,
    rbf: Option<(f64, f64, usize, Option<f64>)>,
    three_body_cutoff: Option<f64>,
    vectors: bool,
    max_edges: Option<usize>,
    n_threads: Option<usize>,
    ids: Option<Vec<Option<String>>>,
    rbf_float32: bool,
    min_distance: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let selection = match selection {
        "radius" => EdgeSelection::Radius,
        "max_neighbors" => EdgeSelection::MaxNeighbors { k },
        "knn" => EdgeSelection::Knn { k, tie_tolerance, cutoff_step, max_cutoff },
        o => {
            return Err(PyValueError::new_err(format!(
                "selection must be 'radius', 'max_neighbors' or 'knn', got {o:?}"
            )))
        }
    };
    let few_neighbors = match few_neighbors {
        "keep" => FewNeighbors::Keep,
        "error" => FewNeighbors::Error,
        o => return Err(PyValueError::new_err(format!("few_neighbors must be 'keep' or 'error', got {o:?}"))),
    };
    let rbf = rbf.map(|(start, stop, n, width)| Rbf { start, stop, n, width });
    let opts = GraphOptions {
        cutoff,
        selection,
        few_neighbors,
        rbf,
        three_body_cutoff,
        want_vectors: vectors,
        max_edges,
        rbf_float32,
        min_distance,
    };
    let structures = structures_from_arrays(lattices, frac_coords, numbers, pbc, ptr, ids)?;
    let g = run(py, || build_graphs(&structures, &opts, n_threads))?;
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
    if three_body_cutoff.is_some() {
        let n_t = g.triplet_cos.len();
        d.set_item("triplet_index", arr(py, g.triplet_index).reshape([2, n_t])?)?;
        d.set_item("triplet_cos", arr(py, g.triplet_cos))?;
        d.set_item("triplet_ptr", arr(py, g.triplet_ptr))?;
    }
    Ok(d)
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
#[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, n_threads = None, ids = None))]
#[allow(clippy::too_many_arguments)]
fn density_features<'py>(
    py: Python<'py>,
    lattices: PyReadonlyArray3<f64>,
    frac_coords: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    n_threads: Option<usize>,
    ids: Option<Vec<Option<String>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let structures = structures_from_arrays(lattices, frac_coords, numbers, pbc, ptr, ids)?;
    let out = run(py, || desc::batch(&structures, n_threads, |s, k| desc::density_features(s, k).map(|r| r.to_vec())))?;
    rows(py, out, 3)
}

/// (Partial) radial distribution functions over `edges`; partial when `elements` is given.
#[pyfunction]
#[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, edges, elements = None, n_threads = None, ids = None))]
#[allow(clippy::too_many_arguments)]
fn radial_distribution<'py>(
    py: Python<'py>,
    lattices: PyReadonlyArray3<f64>,
    frac_coords: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    edges: Vec<f64>,
    elements: Option<Vec<u8>>,
    n_threads: Option<usize>,
    ids: Option<Vec<Option<String>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let structures = structures_from_arrays(lattices, frac_coords, numbers, pbc, ptr, ids)?;
    let n_bins = edges.len().saturating_sub(1);
    let width = match &elements {
        Some(e) => e.len() * (e.len() + 1) / 2 * n_bins,
        None => n_bins,
    };
    let out = run(py, || match &elements {
        Some(e) => desc::batch(&structures, n_threads, |s, k| desc::partial_radial_distribution(s, k, &edges, e)),
        None => desc::batch(&structures, n_threads, |s, k| desc::radial_distribution(s, k, &edges)),
    })?;
    rows(py, out, width)
}

/// Sine Coulomb matrix eigenvalues, decreasing, zero-padded to `n_max` columns.
#[pyfunction]
#[pyo3(signature = (lattices, frac_coords, numbers, pbc, ptr, n_max, n_threads = None, ids = None))]
#[allow(clippy::too_many_arguments)]
fn sine_coulomb_eigenvalues<'py>(
    py: Python<'py>,
    lattices: PyReadonlyArray3<f64>,
    frac_coords: PyReadonlyArray2<f64>,
    numbers: PyReadonlyArray1<i64>,
    pbc: PyReadonlyArray2<bool>,
    ptr: PyReadonlyArray1<i64>,
    n_max: usize,
    n_threads: Option<usize>,
    ids: Option<Vec<Option<String>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let structures = structures_from_arrays(lattices, frac_coords, numbers, pbc, ptr, ids)?;
    let out = run(py, || desc::batch(&structures, n_threads, desc::sine_coulomb_eigenvalues))?;
    rows(py, out, n_max)
}

/// Atomic numbers of element symbols (exact symbols such as `Fe`; an unknown one raises).
#[pyfunction]
fn atomic_numbers<'py>(py: Python<'py>, symbols: Vec<String>) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let mut out = Vec::with_capacity(symbols.len());
    for (k, s) in symbols.iter().enumerate() {
        let z = matxfer_core::elements::z_from_symbol(s.trim()).ok_or_else(|| {
            crate::errors::raise(py, "StructureError", format!("site {k}: unknown species {s:?}"), &[])
        })?;
        out.push(z as i64);
    }
    Ok(arr(py, out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_structures, m)?)?;
    m.add_function(wrap_pyfunction!(atomic_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(density_features, m)?)?;
    m.add_function(wrap_pyfunction!(radial_distribution, m)?)?;
    m.add_function(wrap_pyfunction!(sine_coulomb_eigenvalues, m)?)?;
    m.add_function(wrap_pyfunction!(neighbor_list, m)?)?;
    m.add_function(wrap_pyfunction!(build_graph_batch, m)?)?;
    Ok(())
}
