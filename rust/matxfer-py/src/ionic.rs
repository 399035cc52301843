//! Bindings of the ionic descriptors: Ewald energies (pymatgen `EwaldSummation`) with explicit or
//! guessed oxidation states, the orbital field matrix, and bond-valence oxidation states
//! (pymatgen `BVAnalyzer`).

use matxfer_core::bond_valence::{bond_valence_batch, BondValenceOptions};
use matxfer_core::ewald::{ewald_batch, ChargeSource, EwaldOptions};
use matxfer_core::limits::check_output_bytes;
use matxfer_core::ofm::{feature_names, orbital_field_matrix_batch, xenonpy_feature_names, Flavour, SiteAverage};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args;
use crate::errors::{detach_core, invalid_argument, to_py_err};
use crate::structures::PyStructures;

fn optional_real(py: Python<'_>, v: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<f64>> {
    match v.filter(|x| !x.is_none()) {
        Some(x) => Ok(Some(args::real(py, x, name)?)),
        None => Ok(None),
    }
}

/// Ewald terms per structure (`real`, `reciprocal`, `point`, `charged`, `total`, eV) and the
/// per-site `charges` used. `oxidation_states`: flat per-site states, or `None` to guess them.
#[pyfunction]
#[pyo3(signature = (structures, oxidation_states = None, accuracy = None, eta = None, real_space_cut = None,
    recip_space_cut = None, max_work = 10_000_000, no_guess = "zero", n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn ewald_energy<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    oxidation_states: Option<PyReadonlyArray1<'py, f64>>,
    accuracy: Option<&Bound<'py, PyAny>>,
    eta: Option<&Bound<'py, PyAny>>,
    real_space_cut: Option<&Bound<'py, PyAny>>,
    recip_space_cut: Option<&Bound<'py, PyAny>>,
    max_work: u64,
    no_guess: &str,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = EwaldOptions {
        accuracy: optional_real(py, accuracy, "accuracy")?.unwrap_or(4.0),
        eta: optional_real(py, eta, "eta")?,
        real_space_cut: optional_real(py, real_space_cut, "real_space_cut")?,
        recip_space_cut: optional_real(py, recip_space_cut, "recip_space_cut")?,
    };
    let no_guess_is_error = match no_guess {
        "zero" => false,
        "raise" => true,
        o => return Err(invalid_argument(py, format!("no_guess must be 'zero' or 'raise', got {o:?}"))),
    };
    if max_work == 0 {
        return Err(invalid_argument(py, "max_work must be positive".into()));
    }
    let n_threads = args::threads(py, n_threads)?;
    let states = match &oxidation_states {
        Some(a) => Some(a.as_slice().map_err(|_| invalid_argument(py, "oxidation_states must be contiguous".into()))?),
        None => None,
    };
    let list = &structures.get().inner;
    let (terms, charges) = detach_core(py, || {
        let source = match states {
            Some(q) => ChargeSource::Explicit(q),
            None => ChargeSource::Guess { max_work, no_guess_is_error },
        };
        ewald_batch(list, source, &opts, n_threads)
    })?;
    let d = PyDict::new(py);
    let col = |f: fn(&matxfer_core::ewald::EwaldTerms) -> f64| terms.iter().map(f).collect::<Vec<f64>>();
    d.set_item("real", PyArray1::from_vec(py, col(|t| t.real)))?;
    d.set_item("reciprocal", PyArray1::from_vec(py, col(|t| t.reciprocal)))?;
    d.set_item("point", PyArray1::from_vec(py, col(|t| t.point)))?;
    d.set_item("charged", PyArray1::from_vec(py, col(|t| t.charged)))?;
    d.set_item("total", PyArray1::from_vec(py, col(|t| t.total())))?;
    d.set_item("charges", PyArray1::from_vec(py, charges))?;
    Ok(d)
}

/// Orbital field matrices `(S, size * size)` (row-major) and the flavour's feature names
/// (matminer's, or XenonPy's with `flavour = "xenonpy"`, which averages every site).
#[pyfunction]
#[pyo3(signature = (structures, period_tag = false, site_average = "symmetry", symprec = 0.01,
    flavour = "matminer", n_threads = None))]
fn orbital_field_matrix<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    period_tag: bool,
    site_average: &str,
    symprec: f64,
    flavour: &str,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    let flavour = match flavour {
        "matminer" => Flavour::Matminer,
        "xenonpy" => Flavour::XenonPy,
        o => return Err(invalid_argument(py, format!("flavour must be 'matminer' or 'xenonpy', got {o:?}"))),
    };
    let average = match (site_average, flavour) {
        ("symmetry", Flavour::Matminer) => SiteAverage::Symmetry { symprec },
        ("all", _) => SiteAverage::AllSites,
        ("symmetry", Flavour::XenonPy) => {
            return Err(invalid_argument(
                py,
                "site_average='symmetry' is matminer's: XenonPy's orbital field matrix averages every site \
                 (site_average='all')"
                    .into(),
            ))
        }
        (o, _) => return Err(invalid_argument(py, format!("site_average must be 'symmetry' or 'all', got {o:?}"))),
    };
    if period_tag && flavour == Flavour::XenonPy {
        return Err(invalid_argument(
            py,
            "period_tag is matminer's option: XenonPy's orbital field matrix has no period tag".into(),
        ));
    }
    let n_threads = args::threads(py, n_threads)?;
    let names = match flavour {
        Flavour::Matminer => feature_names(period_tag),
        Flavour::XenonPy => xenonpy_feature_names(),
    };
    let width = names.len();
    let list = &structures.get().inner;
    let rows = list.len();
    let out = detach_core(py, || {
        check_output_bytes(rows as f64 * width as f64 * 8.0, || format!("a {rows} x {width} orbital field matrix"))?;
        orbital_field_matrix_batch(list, period_tag, average, flavour, n_threads)
    })?;
    let mut flat = Vec::with_capacity(rows * width);
    for r in out {
        flat.extend(r);
    }
    Ok((PyArray1::from_vec(py, flat).reshape([rows, width])?.into_any(), names))
}

/// `(index, reason)` of the structures without an answer.
type Failures = Vec<(usize, String)>;

/// Bond-valence oxidation states (pymatgen `BVAnalyzer().get_valences`): `(states, failures)`,
/// `states` an int32 array with one entry per site of the batch (0 on the sites of a failed
/// structure), `failures` the `(index, reason)` of the structures without states, in order. With
/// `raise_errors` the lowest failed structure raises its `StructureError` instead.
#[pyfunction]
#[pyo3(signature = (structures, symprec = None, max_radius = None, distance_scale_factor = None,
    max_permutations = None, raise_errors = true, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn bond_valence_states<'py>(
    py: Python<'py>,
    structures: &Bound<'py, PyStructures>,
    symprec: Option<&Bound<'py, PyAny>>,
    max_radius: Option<&Bound<'py, PyAny>>,
    distance_scale_factor: Option<&Bound<'py, PyAny>>,
    max_permutations: Option<&Bound<'py, PyAny>>,
    raise_errors: bool,
    n_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyArray1<i32>>, Failures)> {
    let d = BondValenceOptions::default();
    let opts = BondValenceOptions {
        symprec: optional_real(py, symprec, "symprec")?.unwrap_or(d.symprec),
        max_radius: optional_real(py, max_radius, "max_radius")?.unwrap_or(d.max_radius),
        distance_scale_factor: optional_real(py, distance_scale_factor, "distance_scale_factor")?
            .unwrap_or(d.distance_scale_factor),
        max_permutations: args::count(py, max_permutations, "max_permutations", 0, usize::MAX)?
            .map_or(d.max_permutations, |v| v as u64),
    };
    let n_threads = args::threads(py, n_threads)?;
    let list = &structures.get().inner;
    let rows = detach_core(py, || bond_valence_batch(list, &opts, n_threads))?;
    let mut states = Vec::with_capacity(list.iter().map(|s| s.n_sites()).sum());
    let mut failures = Vec::new();
    for (k, (row, s)) in rows.into_iter().zip(list).enumerate() {
        match row {
            Ok(v) => states.extend(v),
            Err(e) => {
                if raise_errors {
                    return Err(to_py_err(py, e));
                }
                states.extend(std::iter::repeat_n(0, s.n_sites()));
                let reason = match e {
                    matxfer_core::CoreError::Structure { reason, .. } => reason,
                    other => other.to_string(),
                };
                failures.push((k, reason));
            }
        }
    }
    Ok((PyArray1::from_vec(py, states), failures))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bond_valence_states, m)?)?;
    m.add_function(wrap_pyfunction!(ewald_energy, m)?)?;
    m.add_function(wrap_pyfunction!(orbital_field_matrix, m)?)?;
    Ok(())
}
