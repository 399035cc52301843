//! Binding of the SOAP power spectrum (dscribe `SOAP`, GTO radial basis).

use matxfer_core::soap::{soap_batch, SoapAverage, SoapOptions};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use crate::args;
use crate::errors::{detach_core, invalid_argument, to_py_err};
use crate::structures::PyStructures;

/// SOAP matrix `(rows, n_features)` and the feature names. `species`: atomic numbers.
#[pyfunction]
#[pyo3(signature = (structures, species, r_cut, n_max, l_max, sigma = None, average = "off", periodic = true, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn soap<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    species: Vec<i64>,
    r_cut: &Bound<'py, PyAny>,
    n_max: &Bound<'py, PyAny>,
    l_max: &Bound<'py, PyAny>,
    sigma: Option<&Bound<'py, PyAny>>,
    average: &str,
    periodic: bool,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    let species = species
        .into_iter()
        .map(|z| u8::try_from(z).map_err(|_| invalid_argument(py, format!("species has an unknown atomic number {z}"))))
        .collect::<PyResult<Vec<u8>>>()?;
    let opts = SoapOptions {
        r_cut: args::real(py, r_cut, "r_cut")?,
        n_max: args::count(py, Some(n_max), "n_max", 1, matxfer_core::soap::MAX_N_MAX)?.unwrap_or(0),
        l_max: args::count(py, Some(l_max), "l_max", 0, matxfer_core::soap::MAX_L_MAX)?.unwrap_or(0),
        sigma: match sigma.filter(|s| !s.is_none()) {
            Some(s) => args::real(py, s, "sigma")?,
            None => 1.0,
        },
        species,
        average: SoapAverage::parse(average).map_err(|e| to_py_err(py, e))?,
        periodic,
    };
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let out = detach_core(py, || soap_batch(list, &opts, n_threads))?;
    let names = matxfer_core::soap::feature_names(&out.species, opts.n_max, opts.l_max);
    let array = PyArray1::from_vec(py, out.values).reshape([out.rows, out.n_features])?;
    Ok((array.into_any(), names))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(soap, m)?)?;
    Ok(())
}
