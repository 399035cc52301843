//! PyO3 binding of matxfer-core, built as the private module `matxfer._core`.
//! Only conversions live here: extract inputs, release the GIL, call the core, map errors.
use pyo3::prelude::*;

mod composition;
mod errors;
mod molecules;
mod structures;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    composition::register(m)?;
    structures::register(m)?;
    molecules::register(m)?;
    Ok(())
}
