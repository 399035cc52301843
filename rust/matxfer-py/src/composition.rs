//! Composition featurization: `Featurizer` (a preset or a user element table) applied to a list of
//! Python strings or to Arrow string buffers, writing straight into a new numpy array.

use matxfer_core::composition::{
    featurize_batch, BadEntry, ErrorMode, Featurizer, MissingPolicy, OutFloat, Rejected, Stat, StrSource,
};
use matxfer_core::elements::{available_tables, embedded_table, ElementTable};
use matxfer_core::oxidation::{guess_batch, GuessOptions, DEFAULT_MAX_GUESSES, DEFAULT_MAX_WORK};
use matxfer_core::{parse_formula as core_parse, CoreError};
use numpy::{Element, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::args;
use crate::errors::{detach_core, dict_from, invalid_argument, to_py_err};

/// Strings copied out of a Python list into one buffer (so the GIL can be released).
struct PackedStrings {
    data: Vec<u8>,
    /// `offsets[i]..offsets[i+1]` is row i (empty for a non-string entry).
    offsets: Vec<usize>,
    /// Entries that are not str, sorted by row.
    not_strings: Vec<(usize, BadEntry)>,
}

impl StrSource for PackedStrings {
    fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    fn get(&self, i: usize) -> Result<Option<&str>, BadEntry> {
        if let Ok(k) = self.not_strings.binary_search_by_key(&i, |(j, _)| *j) {
            let bad = &self.not_strings[k].1;
            return if bad.code == "null" { Ok(None) } else { Err(bad.clone()) };
        }
        let bytes = &self.data[self.offsets[i]..self.offsets[i + 1]];
        // Built from Python str objects: always UTF-8.
        std::str::from_utf8(bytes).map(Some).map_err(|e| invalid_utf8(e, bytes))
    }
}

fn invalid_utf8(e: std::str::Utf8Error, bytes: &[u8]) -> BadEntry {
    BadEntry {
        code: "invalid_utf8",
        message: format!("invalid UTF-8: {e}"),
        input: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Arrow `large_string` (or `string` cast to int64 offsets) buffers, borrowed from numpy views.
struct ArrowStrings<'a> {
    data: &'a [u8],
    offsets: &'a [i64],
    validity: Option<&'a [u8]>,
    validity_offset: usize,
}

impl StrSource for ArrowStrings<'_> {
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    fn get(&self, i: usize) -> Result<Option<&str>, BadEntry> {
        if let Some(bits) = self.validity {
            let bit = self.validity_offset + i;
            if bits[bit / 8] & (1 << (bit % 8)) == 0 {
                return Ok(None);
            }
        }
        let (start, end) = (self.offsets[i], self.offsets[i + 1]);
        if start < 0 || end < start || end as usize > self.data.len() {
            let message = format!("corrupt Arrow offsets {start}..{end}");
            return Err(BadEntry { code: "corrupt_arrow", message, input: String::new() });
        }
        let bytes = &self.data[start as usize..end as usize];
        std::str::from_utf8(bytes).map(Some).map_err(|e| invalid_utf8(e, bytes))
    }
}

type RejectedRow = (usize, String, String);

fn rejected_rows(rejected: Vec<Rejected>) -> Vec<RejectedRow> {
    rejected.into_iter().map(|r| (r.index, r.input, format!("{}: {}", r.code, r.message))).collect()
}

/// Allocate the output array, fill it with the GIL released.
fn run<'py, T: OutFloat + Element, S: StrSource + Send + Sync>(
    py: Python<'py>,
    featurizer: &Featurizer,
    src: &S,
    mode: ErrorMode,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyAny>, Vec<RejectedRow>)> {
    let shape = [src.len(), featurizer.n_features()];
    let bytes = shape[0] as f64 * shape[1] as f64 * std::mem::size_of::<T>() as f64;
    matxfer_core::limits::check_output_bytes(bytes, || format!("a {} x {} feature matrix", shape[0], shape[1]))
        .map_err(|e| to_py_err(py, e))?;
    // SAFETY: every element is written by `featurize_batch` (a value or NaN) before Python sees
    // the array; on error the array is dropped without being read.
    let array = unsafe { PyArray2::<T>::new(py, shape, false) };
    let out: &mut [T] = unsafe { array.as_slice_mut() }
        .map_err(|e| to_py_err(py, CoreError::InvalidArgument(format!("output array: {e}"))))?;
    let rejected = detach_core(py, || featurize_batch(featurizer, src, out, mode, n_threads))?;
    Ok((array.into_any(), rejected_rows(rejected)))
}

/// Why a list entry is not a formula: None and float NaN count as missing values (null).
fn not_a_string(item: &Bound<'_, PyAny>) -> BadEntry {
    let input = item.repr().map(|r| r.to_string()).unwrap_or_default();
    let is_nan = item.extract::<f64>().is_ok_and(|v| v.is_nan());
    if item.is_none() || is_nan {
        return BadEntry { code: "null", message: "missing value".into(), input };
    }
    let type_name = item.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    BadEntry { code: "not_a_string", message: format!("not a string (got {type_name})"), input }
}

/// A `str` holding a lone surrogate (not encodable as UTF-8).
fn invalid_unicode(item: &Bound<'_, PyAny>) -> BadEntry {
    let input = item.repr().map(|r| r.to_string()).unwrap_or_default();
    BadEntry { code: "invalid_unicode", message: "not valid Unicode (lone surrogate)".into(), input }
}

/// Copy the strings of a Python list into one buffer; non-strings are remembered by row.
fn pack_list(formulas: &Bound<'_, PyList>) -> PackedStrings {
    let n = formulas.len();
    let mut packed =
        PackedStrings { data: Vec::with_capacity(n * 12), offsets: Vec::with_capacity(n + 1), not_strings: Vec::new() };
    packed.offsets.push(0);
    for (i, item) in formulas.iter().enumerate() {
        match item.cast::<PyString>() {
            Ok(s) => match s.to_str() {
                Ok(text) => packed.data.extend_from_slice(text.as_bytes()),
                // A str that is not valid Unicode (a lone surrogate): a bad row, not a failed batch.
                Err(_) => packed.not_strings.push((i, invalid_unicode(&item))),
            },
            Err(_) => packed.not_strings.push((i, not_a_string(&item))),
        }
        packed.offsets.push(packed.data.len());
    }
    packed
}

/// A composition featurizer (immutable, shareable between threads).
#[pyclass(name = "Featurizer", module = "matxfer._core", frozen)]
pub struct PyFeaturizer {
    inner: Featurizer,
}

#[pymethods]
impl PyFeaturizer {
    /// A built-in preset (`magpie`, `magpie_full`, `xenonpy`, `cromel[:table]`, `fraction`, `stats:<table>`).
    #[staticmethod]
    #[pyo3(signature = (name, impute_nan=None))]
    fn preset(py: Python<'_>, name: &str, impute_nan: Option<bool>) -> PyResult<Self> {
        Featurizer::from_preset(name, impute_nan).map(|inner| Self { inner }).map_err(|e| to_py_err(py, e))
    }

    /// Statistics over a user table: `values` is float64 `118 x k` (row z-1 = element z).
    #[staticmethod]
    #[pyo3(signature = (name, values, columns, stats, missing))]
    fn from_table(
        py: Python<'_>,
        name: &str,
        values: PyReadonlyArray2<'_, f64>,
        columns: Vec<String>,
        stats: Vec<String>,
        missing: &str,
    ) -> PyResult<Self> {
        let build = || -> Result<Featurizer, CoreError> {
            let shape = values.shape();
            if shape[0] != 118 || shape[1] != columns.len() {
                return Err(CoreError::InvalidArgument(format!(
                    "the table must be 118 x {} (one row per element, {} columns named), got {} x {}",
                    columns.len(),
                    columns.len(),
                    shape[0],
                    shape[1]
                )));
            }
            let flat =
                values.as_slice().map_err(|_| CoreError::InvalidArgument("table must be C-contiguous".into()))?;
            let table = ElementTable::new(name, columns, flat.to_vec())?;
            let stats = stats
                .iter()
                .map(|s| {
                    Stat::from_name(s).ok_or_else(|| CoreError::InvalidArgument(format!("unknown statistic {s:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let policy: MissingPolicy = missing.parse()?;
            Featurizer::from_table(table, stats, policy)
        };
        build().map(|inner| Self { inner }).map_err(|e| to_py_err(py, e))
    }

    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names().to_vec()
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Featurize a list of str. Returns `(array, rejected)`; rejected rows are `(index, input, reason)`.
    #[pyo3(signature = (formulas, errors="raise", n_threads=None, float32=false))]
    fn featurize_list<'py>(
        &self,
        py: Python<'py>,
        formulas: &Bound<'py, PyList>,
        errors: &str,
        n_threads: Option<&Bound<'py, PyAny>>,
        float32: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<RejectedRow>)> {
        let mode: ErrorMode = errors.parse().map_err(|e| to_py_err(py, e))?;
        let n_threads = args::threads(py, n_threads)?;
        let packed = pack_list(formulas);
        if float32 {
            run::<f32, _>(py, &self.inner, &packed, mode, n_threads)
        } else {
            run::<f64, _>(py, &self.inner, &packed, mode, n_threads)
        }
    }

    /// Featurize Arrow string buffers (`data` uint8, `offsets` int64 of length n+1, optional
    /// validity bitmap with its bit offset) without creating a Python object per row.
    #[pyo3(signature = (data, offsets, validity=None, validity_offset=0, errors="raise", n_threads=None, float32=false))]
    #[allow(clippy::too_many_arguments)]
    fn featurize_arrow<'py>(
        &self,
        py: Python<'py>,
        data: PyReadonlyArray1<'py, u8>,
        offsets: PyReadonlyArray1<'py, i64>,
        validity: Option<PyReadonlyArray1<'py, u8>>,
        validity_offset: usize,
        errors: &str,
        n_threads: Option<&Bound<'py, PyAny>>,
        float32: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<RejectedRow>)> {
        let mode: ErrorMode = errors.parse().map_err(|e| to_py_err(py, e))?;
        let n_threads = args::threads(py, n_threads)?;
        let invalid =
            |what: &str| to_py_err(py, CoreError::InvalidArgument(format!("{what} must be a contiguous 1-d array")));
        let src = ArrowStrings {
            data: data.as_slice().map_err(|_| invalid("data"))?,
            offsets: offsets.as_slice().map_err(|_| invalid("offsets"))?,
            validity: match &validity {
                Some(v) => Some(v.as_slice().map_err(|_| invalid("validity"))?),
                None => None,
            },
            validity_offset,
        };
        if let Some(bits) = src.validity {
            if (validity_offset + src.len()).div_ceil(8) > bits.len() {
                return Err(to_py_err(
                    py,
                    CoreError::InvalidArgument("validity bitmap is shorter than the column".into()),
                ));
            }
        }
        if float32 {
            run::<f32, _>(py, &self.inner, &src, mode, n_threads)
        } else {
            run::<f64, _>(py, &self.inner, &src, mode, n_threads)
        }
    }

    fn __repr__(&self) -> String {
        format!("Featurizer(n_features={})", self.inner.n_features())
    }
}

/// Parse one formula into `{symbol: amount}` in order of first appearance.
#[pyfunction]
pub fn parse_formula<'py>(py: Python<'py>, formula: &str) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let comp = core_parse(formula)
        .map_err(|source| to_py_err(py, CoreError::Formula { index: 0, input: formula.to_string(), source }))?;
    dict_from(py, comp.elements.iter().map(|&(z, a)| (matxfer_core::elements::symbol(z).unwrap_or("?").to_string(), a)))
}

/// Names and descriptions of the embedded element tables.
#[pyfunction]
pub fn element_tables() -> Vec<(&'static str, &'static str)> {
    available_tables()
}

/// An embedded element table as `(values 118 x k float64, column names)`.
#[pyfunction]
pub fn element_table<'py>(py: Python<'py>, name: &str) -> PyResult<(Bound<'py, PyArray2<f64>>, Vec<String>)> {
    let t = embedded_table(name).map_err(|e| to_py_err(py, e))?;
    let array = numpy::PyArray1::from_slice(py, t.values()).reshape([118, t.n_columns()])?;
    Ok((array, t.columns().to_vec()))
}

/// Oxidation-state guesses (pymatgen `Composition.oxi_state_guesses` semantics) for a list of
/// formulas. Returns `(rows, rejected)`: per row `None` (rejected, `errors="none"`) or a list of
/// `(guess dict, score)` best first (at most one unless `all_guesses`).
#[pyfunction]
#[pyo3(signature = (formulas, all_guesses=false, target_charge=0.0, all_oxi_states=false, max_work=DEFAULT_MAX_WORK, max_guesses=DEFAULT_MAX_GUESSES, errors="raise", n_threads=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn guess_oxidation_states<'py>(
    py: Python<'py>,
    formulas: &Bound<'py, PyList>,
    all_guesses: bool,
    target_charge: f64,
    all_oxi_states: bool,
    max_work: u64,
    max_guesses: usize,
    errors: &str,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyList>, Vec<RejectedRow>)> {
    let mode = match errors {
        "raise" => ErrorMode::Raise,
        "none" => ErrorMode::Nan,
        o => return Err(invalid_argument(py, format!("errors must be 'raise' or 'none', got {o:?}"))),
    };
    let n_threads = args::threads(py, n_threads)?;
    let options = GuessOptions { target_charge, all_oxi_states, all_guesses, max_work, max_guesses };
    let packed = pack_list(formulas);
    let (rows, rejected) = detach_core(py, || guess_batch(&packed, &options, mode, n_threads))?;
    let symbols: Vec<Bound<'py, PyString>> =
        (1..=118u8).map(|z| PyString::new(py, matxfer_core::elements::symbol(z).unwrap_or("?"))).collect();
    let out = PyList::empty(py);
    for row in rows {
        match row {
            None => out.append(py.None())?,
            Some(g) => {
                let guesses = PyList::empty(py);
                for k in 0..g.n_guesses() {
                    let dict = PyDict::new(py);
                    for (z, value) in g.guess(k) {
                        dict.set_item(&symbols[z as usize - 1], value)?;
                    }
                    guesses.append((dict, g.scores[k]))?;
                }
                out.append(guesses)?;
            }
        }
    }
    Ok((out, rejected_rows(rejected)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(guess_oxidation_states, m)?)?;
    m.add_class::<PyFeaturizer>()?;
    m.add_function(wrap_pyfunction!(parse_formula, m)?)?;
    m.add_function(wrap_pyfunction!(element_tables, m)?)?;
    m.add_function(wrap_pyfunction!(element_table, m)?)?;
    Ok(())
}
