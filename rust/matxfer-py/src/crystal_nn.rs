//! Binding of the core's CrystalNN (`matxfer_core::crystal_nn`).

use matxfer_core::crystal_nn::{crystal_nn_batch, CrystalNNOptions};
use matxfer_core::crystal_nn_fingerprint::{crystal_nn_fingerprint_batch, ops_feature_labels};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args;
use crate::errors::detach_core;
use crate::structures::PyStructures;

fn arr<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Bound<'py, PyArray1<T>> {
    PyArray1::from_vec(py, v)
}

fn ptr(v: Vec<usize>) -> Vec<i64> {
    v.into_iter().map(|x| x as i64).collect()
}

/// CrystalNN of every site: per site `cn (N,)`, `nbr_ptr (N + 1,)`, `cnw_ptr (N + 1,)`; per
/// neighbor `j`, `shifts (M, 3)`, `weights`, `distances`; per CN entry `cn_values`, `cn_probs`;
/// `site_ptr (S + 1,)`. `distance_cutoffs` is `None` or `(low, high)`.
#[pyfunction]
#[pyo3(signature = (structures, distance_cutoffs, x_diff_weight, porous_adjustment, search_cutoff, n_threads = None))]
fn crystal_nn<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    distance_cutoffs: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    x_diff_weight: &Bound<'py, PyAny>,
    porous_adjustment: bool,
    search_cutoff: &Bound<'py, PyAny>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let n_threads = args::threads(py, n_threads)?;
    let distance_cutoffs = match distance_cutoffs {
        None => None,
        Some((lo, hi)) => {
            Some((args::real(py, &lo, "distance_cutoffs[0]")?, args::real(py, &hi, "distance_cutoffs[1]")?))
        }
    };
    let opts = CrystalNNOptions {
        distance_cutoffs,
        x_diff_weight: args::real(py, x_diff_weight, "x_diff_weight")?,
        porous_adjustment,
        search_cutoff: args::real(py, search_cutoff, "search_cutoff")?,
    };
    let list = &structures.get().inner;
    let out = detach_core(py, || crystal_nn_batch(list, &opts, n_threads))?;
    let d = PyDict::new(py);
    d.set_item("cn", arr(py, out.cn))?;
    d.set_item("nbr_ptr", arr(py, ptr(out.nbr_ptr)))?;
    d.set_item("j", arr(py, out.j))?;
    let n = out.shifts.len();
    d.set_item("shifts", arr(py, matxfer_core::neighbors::flatten3(out.shifts)).reshape([n, 3])?)?;
    d.set_item("weights", arr(py, out.weights))?;
    d.set_item("distances", arr(py, out.distances))?;
    d.set_item("cnw_ptr", arr(py, ptr(out.cnw_ptr)))?;
    d.set_item("cn_values", arr(py, out.cn_values))?;
    d.set_item("cn_probs", arr(py, out.cn_probs))?;
    d.set_item("site_ptr", arr(py, ptr(out.site_ptr)))?;
    Ok(d)
}

/// matminer's `CrystalNNFingerprint.from_preset("ops")` of every site: `(N, F)` float64 and
/// the `F` feature names.
#[pyfunction]
#[pyo3(signature = (structures, n_threads = None))]
fn crystal_nn_fingerprint<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let opts = CrystalNNOptions::default();
    let out = detach_core(py, || crystal_nn_fingerprint_batch(list, &opts, n_threads))?;
    let labels = ops_feature_labels();
    let rows = out.len() / labels.len();
    Ok((arr(py, out).reshape([rows, labels.len()])?.into_any(), labels))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crystal_nn, m)?)?;
    m.add_function(wrap_pyfunction!(crystal_nn_fingerprint, m)?)?;
    Ok(())
}
