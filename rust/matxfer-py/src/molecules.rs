//! Binding for molecular graphs: flat atom/bond arrays from RDKit in, the batched-graph dict out.

use matxfer_core::molecule_graph::{build_molecule_graphs, MoleculeBatch, EDGE_FEATURES};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn arr2<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, cols: usize) -> PyResult<Bound<'py, PyAny>> {
    let rows = v.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_vec(py, v).reshape([rows, cols])?.into_any())
}

#[pyfunction]
#[pyo3(signature = (atom_ptr, numbers, radii, bond_ptr, bonds, bond_types, bond_flags, positions=None, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn build_molecule_graph_batch<'py>(
    py: Python<'py>,
    atom_ptr: PyReadonlyArray1<i64>,
    numbers: PyReadonlyArray1<i64>,
    radii: PyReadonlyArray1<f64>,
    bond_ptr: PyReadonlyArray1<i64>,
    bonds: PyReadonlyArray2<i64>,
    bond_types: PyReadonlyArray1<u8>,
    bond_flags: PyReadonlyArray1<u8>,
    positions: Option<PyReadonlyArray2<f64>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let batch = MoleculeBatch {
        atom_ptr: atom_ptr.as_slice()?,
        numbers: numbers.as_slice()?,
        radii: radii.as_slice()?,
        bond_ptr: bond_ptr.as_slice()?,
        bonds: bonds.as_slice()?,
        bond_types: bond_types.as_slice()?,
        bond_flags: bond_flags.as_slice()?,
        positions: match &positions {
            Some(p) => Some(p.as_slice()?),
            None => None,
        },
    };
    let g = crate::errors::detach_core(py, || build_molecule_graphs(&batch, n_threads))?;
    let n_edges = g.distances.len();
    let d = PyDict::new(py);
    d.set_item("numbers", PyArray1::from_vec(py, g.numbers))?;
    d.set_item("edge_index", PyArray1::from_vec(py, g.edge_index).reshape([2, n_edges])?)?;
    d.set_item("shifts", arr2(py, g.shifts, 3)?)?;
    d.set_item("distances", PyArray1::from_vec(py, g.distances))?;
    d.set_item("edge_attr", arr2(py, g.edge_attr, EDGE_FEATURES.len())?)?;
    d.set_item("edge_bond", PyArray1::from_vec(py, g.edge_bond))?;
    d.set_item("node_graph", PyArray1::from_vec(py, g.node_graph))?;
    d.set_item("graph_ptr", PyArray1::from_vec(py, g.graph_ptr))?;
    d.set_item("edge_ptr", PyArray1::from_vec(py, g.edge_ptr))?;
    Ok(d)
}

#[pyfunction]
fn molecule_edge_features() -> Vec<&'static str> {
    EDGE_FEATURES.to_vec()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(build_molecule_graph_batch, m)?)?;
    m.add_function(wrap_pyfunction!(molecule_edge_features, m)?)?;
    Ok(())
}
