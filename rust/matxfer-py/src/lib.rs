//! PyO3 binding of matxfer-core, built as the private module `matxfer._core`.
//! Only conversions live here: extract inputs, release the GIL, call the core, map errors.
use pyo3::prelude::*;

mod args;
mod composition;
mod crystal_nn;
mod errors;
mod ionic;
mod molecules;
mod order_params;
mod soap;
mod structures;
mod ward2017;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Load numpy's C API now: rust-numpy loads it on first use and panics if that import fails,
    // e.g. when Ctrl-C lands in the middle of it during a call.
    numpy::PyArray1::<f64>::zeros(m.py(), 0, false);
    composition::register(m)?;
    structures::register(m)?;
    crystal_nn::register(m)?;
    molecules::register(m)?;
    ward2017::register(m)?;
    order_params::register(m)?;
    ionic::register(m)?;
    soap::register(m)?;
    Ok(())
}
