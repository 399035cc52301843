//! Parallel batch featurization of many formula strings.
//!
//! Rows are split into fixed-size chunks; each chunk is parsed and featurized independently into
//! its own slice of the caller's output buffer, so the result does not depend on the thread count.

use rayon::prelude::*;

use super::{Featurizer, Scratch};
use crate::error::{CoreError, FormulaError};
use crate::formula::{Composition, FormulaParser};
use crate::parallel::{effective_threads, with_threads};

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance 2-64 cores.
const CHUNK_ROWS: usize = 512;

impl std::str::FromStr for ErrorMode {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "raise" => Ok(Self::Raise),
            "nan" => Ok(Self::Nan),
            o => Err(CoreError::InvalidArgument(format!("errors must be 'raise' or 'nan', got {o:?}"))),
        }
    }
}

/// A read-only column of (possibly missing) strings.
pub trait StrSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `i`: `Ok(None)` for a missing (null) entry, `Err` for an entry that is not a string.
    fn get(&self, i: usize) -> Result<Option<&str>, BadEntry>;
}

/// An entry of a column that is not a usable string (wrong type, invalid UTF-8, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct BadEntry {
    /// Reason code, e.g. `not_a_string`, `invalid_utf8`, `null`.
    pub code: &'static str,
    pub message: String,
    /// A printable form of the entry.
    pub input: String,
}

impl<S: AsRef<str> + Sync> StrSource for [S] {
    fn len(&self) -> usize {
        <[S]>::len(self)
    }
    fn get(&self, i: usize) -> Result<Option<&str>, BadEntry> {
        Ok(Some(self[i].as_ref()))
    }
}

/// What to do with a row that cannot be featurized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// Fail the whole batch with the first bad row (lowest index).
    Raise,
    /// Fill the row with NaN and report it in the rejected list.
    Nan,
}

/// A rejected row: index, the input as given (lossy for non-UTF-8), reason code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub input: String,
    pub code: &'static str,
    pub message: String,
    /// The parse error, when the formula itself was the problem.
    pub formula_error: Option<FormulaError>,
}

impl Rejected {
    /// Row `index` rejected for a reason other than its formula text.
    pub(crate) fn new(index: usize, input: &str, code: &'static str, message: String) -> Self {
        Rejected { index, input: input.to_string(), code, message, formula_error: None }
    }

    pub(crate) fn into_error(self) -> CoreError {
        match self.formula_error {
            Some(source) => CoreError::Formula { index: self.index, input: self.input, source },
            None => CoreError::Descriptor { index: self.index, input: self.input, reason: self.message },
        }
    }
}

/// Output element type (f64 or f32).
pub trait OutFloat: Copy + Send + Sync + 'static {
    const NAN: Self;
    fn from_f64(x: f64) -> Self;
    /// The slice itself when `Self` is f64 (rows are then written in place, without a copy).
    fn as_f64_mut(slice: &mut [Self]) -> Option<&mut [f64]>;
}

impl OutFloat for f64 {
    const NAN: Self = f64::NAN;
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64_mut(slice: &mut [Self]) -> Option<&mut [f64]> {
        Some(slice)
    }
}

impl OutFloat for f32 {
    const NAN: Self = f32::NAN;
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64_mut(_: &mut [Self]) -> Option<&mut [f64]> {
        None
    }
}

/// Parse row `i` of `src` into `comp` and return its text; a null, non-string or unparsable entry
/// is the row's [`Rejected`] (the one reading rule of every formula batch in the core).
pub(crate) fn parse_row<'a, S: StrSource + ?Sized>(
    parser: &mut FormulaParser,
    comp: &mut Composition,
    src: &'a S,
    i: usize,
) -> Result<&'a str, Rejected> {
    let text = match src.get(i) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(Rejected::new(i, "", "null", "missing value (null)".into())),
        Err(bad) => return Err(Rejected::new(i, &bad.input, bad.code, bad.message)),
    };
    if let Err(e) = parser.parse_into(text, comp) {
        return Err(Rejected {
            formula_error: Some(e.clone()),
            ..Rejected::new(i, text, e.kind.code(), e.to_string())
        });
    }
    Ok(text)
}

#[derive(Default)]
struct Worker {
    parser: FormulaParser,
    comp: Composition,
    scratch: Scratch,
    row: Vec<f64>,
}

impl Worker {
    /// Featurize row `i` into `dst` (f64 output) or else into `self.row`.
    fn row<S: StrSource + ?Sized>(
        &mut self,
        f: &Featurizer,
        src: &S,
        i: usize,
        dst: Option<&mut [f64]>,
    ) -> Result<(), Rejected> {
        let reject = |input: &str, code: &'static str, message: String| Rejected::new(i, input, code, message);
        let text = parse_row(&mut self.parser, &mut self.comp, src, i)?;
        // Finite amounts whose sum overflows (`1e308Al1e308Si`) turn every fraction into 0 and the
        // statistics into NaN, which would pass for missing data below.
        if !self.comp.total().is_finite() {
            return Err(reject(
                text,
                "non_finite_feature",
                "the element amounts sum to more than the largest float".into(),
            ));
        }
        let out = match dst {
            Some(d) => d,
            None => {
                self.row.resize(f.n_features(), 0.0);
                &mut self.row
            }
        };
        f.featurize_into(&self.comp, out, &mut self.scratch)
            .map_err(|why| reject(text, "missing_element_data", why))?;
        // Amounts near the float range (`Li1e308O`) overflow weighted statistics: such a row is
        // rejected, never returned with infinities. (NaN is a legitimate value: missing data.)
        if out.iter().any(|v| v.is_infinite()) {
            return Err(reject(
                text,
                "non_finite_feature",
                "a feature overflows to infinity (element amounts too large or too small)".into(),
            ));
        }
        Ok(())
    }
}

/// Featurize every row of `src` into `out` (row-major, `src.len() x f.n_features()`).
///
/// With [`ErrorMode::Raise`] the error of the lowest bad row index is returned (rows after it may
/// or may not have been written). With [`ErrorMode::Nan`] bad rows are NaN and listed, in index
/// order, in the returned vector.
pub fn featurize_batch<T: OutFloat, S: StrSource + ?Sized>(
    f: &Featurizer,
    src: &S,
    out: &mut [T],
    mode: ErrorMode,
    n_threads: Option<usize>,
) -> Result<Vec<Rejected>, CoreError> {
    let n_features = f.n_features();
    let n_rows = src.len();
    if out.len() != n_rows * n_features {
        return Err(CoreError::InvalidArgument(format!(
            "output buffer has {} slots, need {n_rows} rows x {n_features} features",
            out.len()
        )));
    }
    if n_rows == 0 || n_features == 0 {
        return Ok(Vec::new());
    }
    let chunk_len = CHUNK_ROWS * n_features;
    let run_chunk = |w: &mut Worker, chunk_index: usize, chunk: &mut [T]| {
        // Between chunks (about a millisecond of work each), stop on Ctrl-C.
        crate::parallel::check_cancelled()?;
        let first = chunk_index * CHUNK_ROWS;
        let mut rejected = Vec::new();
        for (k, dst) in chunk.chunks_exact_mut(n_features).enumerate() {
            let in_place = T::as_f64_mut(dst).is_some();
            match w.row(f, src, first + k, T::as_f64_mut(dst)) {
                Ok(()) if in_place => {}
                Ok(()) => {
                    for (d, &v) in dst.iter_mut().zip(&w.row) {
                        *d = T::from_f64(v);
                    }
                }
                Err(r) => {
                    dst.fill(T::NAN);
                    rejected.push(r);
                    if mode == ErrorMode::Raise {
                        break;
                    }
                }
            }
        }
        Ok::<_, CoreError>(rejected)
    };
    let threads = effective_threads(n_threads)?;
    let results: Result<Vec<Vec<Rejected>>, CoreError> = if n_rows <= CHUNK_ROWS || threads == 1 {
        // One chunk's work, or one thread: on the calling thread, without waking a pool (whose
        // wake-up would cost more than featurizing a handful of formulas). Same rows, same bits.
        let mut w = Worker::default();
        out.chunks_mut(chunk_len).enumerate().map(|(c, chunk)| run_chunk(&mut w, c, chunk)).collect()
    } else {
        with_threads(n_threads, || {
            out.par_chunks_mut(chunk_len)
                .enumerate()
                .map_init(Worker::default, |w, (chunk_index, chunk)| run_chunk(w, chunk_index, chunk))
                .collect()
        })?
    };
    let rejected: Vec<Rejected> = results?.into_iter().flatten().collect();
    match mode {
        ErrorMode::Raise => match rejected.into_iter().next() {
            Some(r) => Err(r.into_error()),
            None => Ok(Vec::new()),
        },
        ErrorMode::Nan => Ok(rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_does_not_change_bits() {
        let formulas: Vec<String> =
            (0..3000).map(|i| format!("Fe{}O{}Na{}.{}", i % 7 + 1, i % 5 + 1, i % 3 + 1, i % 10)).collect();
        let f = Featurizer::from_preset("magpie_full", None).unwrap();
        let mut a = vec![0.0f64; formulas.len() * f.n_features()];
        let mut b = a.clone();
        featurize_batch(&f, &formulas[..], &mut a, ErrorMode::Raise, Some(1)).unwrap();
        featurize_batch(&f, &formulas[..], &mut b, ErrorMode::Raise, Some(3)).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn errors_name_rows_and_keep_order() {
        let formulas = ["NaCl", "Xx", "Fe2O3", "(Fe"];
        let f = Featurizer::from_preset("magpie", None).unwrap();
        let mut out = vec![0.0f64; 4 * f.n_features()];
        let err = featurize_batch(&f, &formulas[..], &mut out, ErrorMode::Raise, None).unwrap_err();
        assert!(err.to_string().starts_with("row 1:"), "{err}");
        let rejected = featurize_batch(&f, &formulas[..], &mut out, ErrorMode::Nan, None).unwrap();
        assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(rejected[0].code, "unknown_element");
        assert_eq!(rejected[1].code, "unbalanced_bracket");
        let n = f.n_features();
        assert!(out[n..2 * n].iter().all(|v| v.is_nan()));
        assert!(out[..n].iter().all(|v| v.is_finite()));
        assert!(out[2 * n..3 * n].iter().all(|v| v.is_finite()));
    }
}
