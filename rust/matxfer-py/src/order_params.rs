//! Binding of the local structure order parameters (`matxfer_core::order_params`).

use matxfer_core::order_params::{order_parameters_batch, NeighborRows, OpType, OrderParameter, CRYSTALNN_OPS};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args;
use crate::errors::{detach_core, invalid_argument};
use crate::structures::PyStructures;

/// A requested type: its pymatgen name and optional `(key, value)` parameters.
type TypeSpec = (String, Option<Vec<(String, f64)>>);
/// One row of the CrystalNN "ops" table as handed to Python.
type PresetRow<'py> = (usize, String, String, Bound<'py, PyDict>);

/// `(N_sites, len(types))` order parameters, NaN where pymatgen returns None. `types` are
/// `(name, parameters or None)` pairs; neighbors are rows `(i, j, shifts)` with `pair_ptr (S + 1)`.
#[pyfunction]
#[pyo3(signature = (structures, i, j, shifts, pair_ptr, types, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn order_parameters<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    i: PyReadonlyArray1<'py, i64>,
    j: PyReadonlyArray1<'py, i64>,
    shifts: PyReadonlyArray2<'py, i32>,
    pair_ptr: PyReadonlyArray1<'py, i64>,
    types: Vec<TypeSpec>,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let n_threads = args::threads(py, n_threads)?;
    let mut ops = Vec::with_capacity(types.len());
    for (k, (name, params)) in types.iter().enumerate() {
        let mut op = OrderParameter::from_name(name).map_err(|e| invalid_argument(py, format!("types[{k}]: {e}")))?;
        for (key, value) in params.iter().flatten() {
            op.set(key, *value).map_err(|e| invalid_argument(py, format!("types[{k}]: {e}")))?;
        }
        ops.push(op);
    }
    let contiguous = |what: &str| invalid_argument(py, format!("{what} must be a C-contiguous array"));
    let i = i.as_slice().map_err(|_| contiguous("i"))?;
    let j = j.as_slice().map_err(|_| contiguous("j"))?;
    let flat = shifts.as_slice().map_err(|_| contiguous("shifts"))?;
    if shifts.shape()[1] != 3 {
        return Err(invalid_argument(py, format!("shifts must have shape (E, 3), got {:?}", shifts.shape())));
    }
    let shifts: Vec<[i32; 3]> = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let mut ptr = Vec::with_capacity(pair_ptr.len());
    for &p in pair_ptr.as_slice().map_err(|_| contiguous("pair_ptr"))? {
        ptr.push(usize::try_from(p).map_err(|_| invalid_argument(py, format!("pair_ptr has a negative entry {p}")))?);
    }
    let list = &structures.get().inner;
    let rows = NeighborRows { i, j, shifts: &shifts, pair_ptr: &ptr };
    let n_ops = ops.len();
    let out = detach_core(py, || order_parameters_batch(list, &rows, &ops, n_threads))?;
    let n_sites = out.len().checked_div(n_ops).unwrap_or_else(|| list.iter().map(|s| s.n_sites()).sum());
    Ok(PyArray1::from_vec(py, out).reshape([n_sites, n_ops])?.into_any())
}

/// matminer's CrystalNN "ops" table: `(cn, label, type, {key: value})`.
#[pyfunction]
fn crystalnn_ops(py: Python<'_>) -> PyResult<Vec<PresetRow<'_>>> {
    let mut out = Vec::with_capacity(CRYSTALNN_OPS.len());
    for (cn, label, name, params) in CRYSTALNN_OPS {
        let d = PyDict::new(py);
        for (k, v) in params.iter() {
            d.set_item(*k, *v)?;
        }
        out.push((*cn, label.to_string(), name.to_string(), d));
    }
    Ok(out)
}

/// The supported order-parameter type names.
#[pyfunction]
fn order_parameter_types() -> Vec<&'static str> {
    OpType::ALL.iter().map(|t| t.name()).collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(order_parameters, m)?)?;
    m.add_function(wrap_pyfunction!(crystalnn_ops, m)?)?;
    m.add_function(wrap_pyfunction!(order_parameter_types, m)?)?;
    Ok(())
}
