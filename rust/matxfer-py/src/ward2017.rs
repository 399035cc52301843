//! Binding of the Ward et al. 2017 structure features (`matxfer_core::ward2017`).

use matxfer_core::ward2017::{feature_names, ward2017_batch, N_FEATURES};
use pyo3::prelude::*;

use crate::args;
use crate::errors::to_py_err;
use crate::structures::{arr2, run, PyStructures};

/// `(index, message)` of the structures that could not be featurized.
type Failures = Vec<(usize, String)>;

/// The `ward2017` preset of every structure: `(values (S, N_FEATURES), errors)` where `errors`
/// lists `(index, message)` of the structures that failed (their rows are NaN), in order. With
/// `raise_errors` the first failed structure (lowest index) raises its `StructureError` instead.
#[pyfunction]
#[pyo3(signature = (structures, symprec = 0.01, raise_errors = true, n_threads = None))]
fn ward2017_features<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    symprec: f64,
    raise_errors: bool,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Failures)> {
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let (values, mut errors) = run(py, || ward2017_batch(list, symprec, n_threads))?;
    if raise_errors {
        if let Some(e) = errors.iter_mut().find_map(Option::take) {
            return Err(to_py_err(py, e));
        }
    }
    let errors = errors.into_iter().enumerate().filter_map(|(k, e)| e.map(|e| (k, e.to_string()))).collect();
    Ok((arr2(py, values, N_FEATURES)?, errors))
}

/// Feature names of the `ward2017` preset, in column order.
#[pyfunction]
fn ward2017_feature_names() -> Vec<String> {
    feature_names()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ward2017_features, m)?)?;
    m.add_function(wrap_pyfunction!(ward2017_feature_names, m)?)?;
    Ok(())
}
