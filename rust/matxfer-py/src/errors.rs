//! Core errors -> the Python exception classes of `matxfer.exceptions`, and the one helper that
//! runs core work with the GIL released and no panic escaping.

use std::panic::{catch_unwind, AssertUnwindSafe};

use matxfer_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

/// Instantiate `matxfer.exceptions.<class_name>(message)` and set extra attributes on it.
pub fn raise(py: Python<'_>, class_name: &str, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = py.import("matxfer.exceptions")?;
        let cls = module.getattr(class_name)?;
        let exc = cls.call1((message.clone(),))?;
        for (k, v) in attrs {
            exc.setattr(*k, v.bind(py))?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

fn attr<'py>(
    py: Python<'py>,
    key: &'static str,
    value: impl IntoPyObjectExt<'py>,
) -> Option<(&'static str, Py<PyAny>)> {
    value.into_py_any(py).ok().map(|v| (key, v))
}

/// Map every core error variant explicitly.
pub fn to_py_err(py: Python<'_>, err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::Formula { index, input, source } => {
            let attrs: Vec<_> = [
                attr(py, "index", index),
                attr(py, "input", input),
                attr(py, "reason", source.kind.code()),
                attr(py, "offset", source.offset),
            ]
            .into_iter()
            .flatten()
            .collect();
            raise(py, "FormulaError", message, &attrs)
        }
        CoreError::Descriptor { index, input, reason } => {
            let attrs: Vec<_> = [attr(py, "index", index), attr(py, "input", input), attr(py, "reason", reason)]
                .into_iter()
                .flatten()
                .collect();
            raise(py, "FeaturizationError", message, &attrs)
        }
        CoreError::Null { index } => {
            let attrs: Vec<_> = [attr(py, "index", index)].into_iter().flatten().collect();
            raise(py, "FeaturizationError", message, &attrs)
        }
        CoreError::Structure { index, name, reason } => {
            let attrs: Vec<_> = [attr(py, "index", index), attr(py, "name", name), attr(py, "reason", reason)]
                .into_iter()
                .flatten()
                .collect();
            raise(py, "StructureError", message, &attrs)
        }
        CoreError::Parse { file, line, reason } => {
            let attrs: Vec<_> = [attr(py, "file", file), attr(py, "line", line), attr(py, "reason", reason)]
                .into_iter()
                .flatten()
                .collect();
            raise(py, "StructureParseError", message, &attrs)
        }
        CoreError::InvalidArgument(_) => raise(py, "InvalidArgumentError", message, &[]),
    }
}

/// Run `f` with the GIL released; a panic inside becomes `matxfer.exceptions.InternalError`.
pub fn detach_core<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py_err(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(raise(py, "InternalError", format!("internal error in matxfer core (please report): {what}"), &[]))
        }
    }
}

/// `{key: value}` helper for small dict results.
pub fn dict_from<'py>(py: Python<'py>, items: impl IntoIterator<Item = (String, f64)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}
