//! PyO3 binding of matxfer-core, built as `matxfer._core`.
use pyo3::prelude::*;

mod structures;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    structures::register(m)?;
    Ok(())
}
