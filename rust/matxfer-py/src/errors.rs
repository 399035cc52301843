//! Core errors -> the Python exception classes of `matxfer.exceptions`, and the one helper that
//! runs core work with the GIL released, no panic escaping and Ctrl-C honoured.
//!
//! | core error | Python exception |
//! |---|---|
//! | `Formula` | `FormulaError` (ValueError): `.index`, `.input`, `.reason`, `.offset` |
//! | `Descriptor`, `Null` | `FeaturizationError` (ValueError): `.index`, `.input`, `.reason` |
//! | `Structure` | `StructureError` (ValueError): `.index`, `.name`, `.reason` |
//! | `Parse` | `StructureParseError` (ValueError): `.file`, `.line`, `.reason` |
//! | `InvalidArgument` | `InvalidArgumentError` (ValueError) |
//! | `LimitExceeded` | `LimitExceededError` (InvalidArgumentError) |
//! | `Interrupted` | `KeyboardInterrupt` |
//! | a caught panic | `InternalError` (RuntimeError) |

use std::panic::{catch_unwind, AssertUnwindSafe};

use matxfer_core::CoreError;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

// The classes live in Python (python/matxfer/exceptions.py) so they can subclass builtins and be
// documented there; these handles are checked by the compiler at every use.
pyo3::import_exception!(matxfer.exceptions, FormulaError);
pyo3::import_exception!(matxfer.exceptions, FeaturizationError);
pyo3::import_exception!(matxfer.exceptions, StructureError);
pyo3::import_exception!(matxfer.exceptions, StructureParseError);
pyo3::import_exception!(matxfer.exceptions, InvalidArgumentError);
pyo3::import_exception!(matxfer.exceptions, ArgumentTypeError);
pyo3::import_exception!(matxfer.exceptions, LimitExceededError);
pyo3::import_exception!(matxfer.exceptions, InternalError);

/// `err` with extra attributes set on its value.
fn with_attrs<'py>(py: Python<'py>, err: PyErr, attrs: Vec<(&'static str, Bound<'py, PyAny>)>) -> PyErr {
    let value = err.value(py);
    for (k, v) in attrs {
        if let Err(e) = value.setattr(k, v) {
            return e;
        }
    }
    err
}

fn a<'py>(py: Python<'py>, key: &'static str, value: impl IntoPyObjectExt<'py>) -> (&'static str, Bound<'py, PyAny>) {
    (key, value.into_bound_py_any(py).unwrap_or_else(|_| py.None().into_bound(py)))
}

/// An `InvalidArgumentError` (a `ValueError`).
pub fn invalid_argument(py: Python<'_>, message: String) -> PyErr {
    to_py_err(py, CoreError::InvalidArgument(message))
}

/// An `ArgumentTypeError` (a `TypeError`): an argument of the wrong type.
pub fn argument_type(message: String) -> PyErr {
    ArgumentTypeError::new_err(message)
}

/// Map every core error variant explicitly (the match has no catch-all arm).
pub fn to_py_err(py: Python<'_>, err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::Formula { index, input, source } => with_attrs(
            py,
            FormulaError::new_err(message),
            vec![
                a(py, "index", index),
                a(py, "input", input),
                a(py, "reason", source.kind.code()),
                a(py, "offset", source.offset),
            ],
        ),
        CoreError::Descriptor { index, input, reason } => with_attrs(
            py,
            FeaturizationError::new_err(message),
            vec![a(py, "index", index), a(py, "input", input), a(py, "reason", reason)],
        ),
        CoreError::Null { index } => with_attrs(
            py,
            FeaturizationError::new_err(message),
            vec![a(py, "index", index), a(py, "input", py.None()), a(py, "reason", "null")],
        ),
        CoreError::Structure { index, name, reason } => with_attrs(
            py,
            StructureError::new_err(message),
            vec![a(py, "index", index), a(py, "name", name), a(py, "reason", reason)],
        ),
        CoreError::Parse { file, line, reason } => with_attrs(
            py,
            StructureParseError::new_err(message),
            vec![a(py, "file", file), a(py, "line", line), a(py, "reason", reason)],
        ),
        CoreError::InvalidArgument(_) => InvalidArgumentError::new_err(message),
        CoreError::LimitExceeded(_) => LimitExceededError::new_err(message),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(()),
    }
}

/// Run `f` with the GIL released. A panic inside becomes `InternalError`; Ctrl-C during the work
/// cancels it (the core polls the flag between chunks) and raises `KeyboardInterrupt`.
pub fn detach_core<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    // A Ctrl-C that arrived while the inputs were being read (GIL held) is raised now, before the
    // work starts, instead of being lost.
    py.check_signals()?;
    let guard = sigint::Guard::install(py)?;
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    let interrupted = guard.finish();
    if interrupted {
        // Tell Python a SIGINT arrived, then let its handler raise (KeyboardInterrupt by default).
        // SAFETY: called with the GIL held (`py`); PyErr_SetInterrupt only sets a flag.
        unsafe { pyo3::ffi::PyErr_SetInterrupt() };
        py.check_signals()?;
        return Err(PyKeyboardInterrupt::new_err(()));
    }
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py_err(py, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(InternalError::new_err(format!("internal error in matxfer core (please report): {what}")))
        }
    }
}

/// While core work runs with the GIL released, Python cannot run its SIGINT handler: CPython's C
/// handler only sets a flag, and the Python-level handler runs when the main thread next holds the
/// GIL, i.e. after the call. (A watcher thread cannot take over: `PyErr_CheckSignals` runs handlers
/// on the main thread only.) So on the main thread, while Python's default handler is installed, a
/// C handler takes its place for the duration of the call: it only asks the core to stop
/// (async-signal-safe atomic stores); the previous handler is restored afterwards and the interrupt
/// handed back to Python. Only POSIX calls are used (`sigaction`, `sigemptyset`), so this holds on
/// every Unix; Windows has no `sigaction`, see the other `sigint` below.
#[cfg(unix)]
mod sigint {
    use std::sync::Mutex;

    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;

    /// (active guards, the handler to restore).
    static STATE: Mutex<(usize, Option<libc::sigaction>)> = Mutex::new((0, None));

    /// The Python objects every call consults, looked up once per process instead of importing
    /// `signal` and `threading` on every call.
    struct PythonSide {
        getsignal: Py<PyAny>,
        default_int_handler: Py<PyAny>,
        main_thread: Py<PyAny>,
    }

    static PYTHON_SIDE: PyOnceLock<PythonSide> = PyOnceLock::new();

    extern "C" fn on_sigint(_: libc::c_int) {
        matxfer_core::parallel::request_cancel();
    }

    pub struct Guard {
        active: bool,
    }

    /// Whether this is Python's main thread (the only one that runs signal handlers) and Python's
    /// own SIGINT handler is installed (not a user handler, SIG_IGN or SIG_DFL).
    fn python_default_handler_on_main_thread(py: Python<'_>) -> PyResult<bool> {
        let side = PYTHON_SIDE.get_or_try_init(py, || -> PyResult<PythonSide> {
            let signal = py.import("signal")?;
            Ok(PythonSide {
                getsignal: signal.getattr("getsignal")?.unbind(),
                default_int_handler: signal.getattr("default_int_handler")?.unbind(),
                main_thread: py.import("threading")?.getattr("main_thread")?.unbind(),
            })
        })?;
        // `threading.main_thread()` is asked each time: after a fork from another thread, that
        // thread becomes the child's main thread.
        let main = side.main_thread.bind(py).call0()?.getattr(pyo3::intern!(py, "ident"))?;
        // SAFETY: takes no arguments, returns the calling thread's identifier (as `Thread.ident`).
        let this = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        if main.extract::<libc::c_ulong>().ok() != Some(this) {
            return Ok(false);
        }
        let current = side.getsignal.bind(py).call1((libc::SIGINT,))?;
        Ok(current.is(side.default_int_handler.bind(py)))
    }

    impl Guard {
        pub fn install(py: Python<'_>) -> PyResult<Self> {
            if !python_default_handler_on_main_thread(py)? {
                return Ok(Self { active: false });
            }
            let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
            if state.0 == 0 {
                matxfer_core::parallel::clear_cancel();
                // SAFETY: sigaction with a zeroed, then filled struct; the handler only performs
                // atomic stores.
                unsafe {
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
                    libc::sigemptyset(&mut new.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(libc::SIGINT, &new, &mut old) != 0 {
                        return Ok(Self { active: false });
                    }
                    state.1 = Some(old);
                }
            }
            state.0 += 1;
            Ok(Self { active: true })
        }

        /// Restore Python's handler (last guard out); whether Ctrl-C was pressed meanwhile.
        pub fn finish(mut self) -> bool {
            self.release()
        }

        fn release(&mut self) -> bool {
            if !self.active {
                return false;
            }
            self.active = false;
            let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
            state.0 -= 1;
            let interrupted = matxfer_core::parallel::cancelled();
            if state.0 == 0 {
                if let Some(old) = state.1.take() {
                    // SAFETY: restores the action saved by `install`.
                    unsafe { libc::sigaction(libc::SIGINT, &old, std::ptr::null_mut()) };
                }
                matxfer_core::parallel::clear_cancel();
            }
            interrupted
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.release();
        }
    }
}

/// Windows: CPython installs its SIGINT handler with the C runtime's `signal()` and the console
/// runs it on a thread of its own; swapping handlers that way is not done here (and not tested), so
/// the core is not cancelled and Ctrl-C is raised as `KeyboardInterrupt` when the call returns.
#[cfg(not(unix))]
mod sigint {
    use pyo3::prelude::*;

    pub struct Guard;

    impl Guard {
        pub fn install(_py: Python<'_>) -> PyResult<Self> {
            Ok(Guard)
        }
        pub fn finish(self) -> bool {
            false
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
