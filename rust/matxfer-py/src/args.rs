//! Checked conversion of Python arguments: counts, thread counts and lengths. Bad values raise
//! `matxfer` exceptions naming the argument (never a bare `OverflowError`), and `True`/`False`
//! are not accepted as numbers.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use crate::errors::{argument_type, invalid_argument};

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// An optional integer in `min..=max`; `None` (or Python `None`) stays `None`.
pub fn count(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    min: usize,
    max: usize,
) -> PyResult<Option<usize>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>() || !(obj.is_instance_of::<PyInt>() || obj.hasattr("__index__")?) {
        return Err(argument_type(format!("{name} must be an int, got {}", type_name(obj))));
    }
    let index = obj.call_method0("__index__")?;
    match index.extract::<i128>() {
        Ok(v) if v >= min as i128 && v <= max as i128 => Ok(Some(v as usize)),
        Ok(v) => Err(invalid_argument(py, format!("{name} must be between {min} and {max}, got {v}"))),
        Err(_) => Err(invalid_argument(py, format!("{name} must be between {min} and {max}, got {}", index.str()?))),
    }
}

/// `n_threads`: `None`, or an int in `1..=MAX_THREADS`.
pub fn threads(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    count(py, obj, "n_threads", 1, matxfer_core::parallel::MAX_THREADS)
}

/// A real number (int or float, not bool); range checks are the core's.
pub fn real(py: Python<'_>, obj: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(argument_type(format!("{name} must be a number, got bool")));
    }
    if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>() || obj.hasattr("__float__")? {
        // An int too large for a float is out of every documented range.
        return obj.call_method0("__float__").and_then(|v| v.extract::<f64>()).map_err(|_| {
            invalid_argument(
                py,
                format!("{name} is out of range: {}", obj.str().map(|s| s.to_string()).unwrap_or_default()),
            )
        });
    }
    Err(argument_type(format!("{name} must be a number, got {}", type_name(obj))))
}
