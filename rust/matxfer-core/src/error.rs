//! Error types of the core. Every fallible public function returns one of these; the core never
//! panics on user input.

use thiserror::Error;

/// Why a formula string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormulaErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// A symbol that is not an element of Z = 1..118.
    UnknownElement,
    /// `(`, `[` or `{` without its partner, or a mismatched pair such as `(]`.
    UnbalancedBracket,
    /// An amount that is zero or negative.
    NonPositiveAmount,
    /// An amount that overflows to infinity or is otherwise not finite.
    NonFiniteAmount,
    /// A number that cannot be read (e.g. `1e`, `1.2.3`).
    InvalidNumber,
    /// A character that cannot appear at this place.
    UnexpectedCharacter,
    /// Brackets nested deeper than the parser allows (guards against stack-like blow-up).
    TooDeep,
}

impl FormulaErrorKind {
    /// Stable snake_case name, used as the reason code in Python.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownElement => "unknown_element",
            Self::UnbalancedBracket => "unbalanced_bracket",
            Self::NonPositiveAmount => "non_positive_amount",
            Self::NonFiniteAmount => "non_finite_amount",
            Self::InvalidNumber => "invalid_number",
            Self::UnexpectedCharacter => "unexpected_character",
            Self::TooDeep => "too_deep",
        }
    }
}

/// A formula parse error: the kind, the offset (in characters) into the input where it was found,
/// and a human-readable message.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{message} (at offset {offset})")]
pub struct FormulaError {
    pub kind: FormulaErrorKind,
    pub offset: usize,
    pub message: String,
}

impl FormulaError {
    pub(crate) fn new(kind: FormulaErrorKind, offset: usize, message: impl Into<String>) -> Self {
        Self { kind, offset, message: message.into() }
    }
}

/// Top-level error of the core crate.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CoreError {
    /// A formula in a batch could not be parsed; `index` is its row.
    #[error("row {index}: cannot parse formula {input:?}: {source}")]
    Formula {
        index: usize,
        input: String,
        #[source]
        source: FormulaError,
    },
    /// A formula parsed, but a descriptor cannot be computed for it (e.g. an element missing from
    /// the chosen table).
    #[error("row {index}: {input:?}: {reason}")]
    Descriptor { index: usize, input: String, reason: String },
    /// A null / missing entry in a batch.
    #[error("row {index}: missing value (null)")]
    Null { index: usize },
    /// A structure in a batch is invalid or cannot be processed (bad cell, NaN coordinates,
    /// overlapping atoms, too many edges...); `index` is its position in the batch and `name` its
    /// id or file when known.
    #[error("structure {index}{}: {reason}", name_suffix(name))]
    Structure { index: usize, name: Option<String>, reason: String },
    /// A structure file could not be parsed; `line` is 1-based (0 when the whole file is at fault).
    #[error("{file}:{line}: {reason}")]
    Parse { file: String, line: usize, reason: String },
    /// A caller passed arguments that do not fit together, or a value outside its documented
    /// bounds (non-finite cutoff, zero bin size, too many threads...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A batch as a whole would exceed a ceiling (pairs, edges, output bytes); single structures
    /// over a ceiling are [`CoreError::Structure`] errors naming the structure.
    #[error("{0}")]
    LimitExceeded(String),
    /// The work was cancelled (Ctrl-C in Python) before it finished; no output is returned.
    #[error("interrupted")]
    Interrupted,
}

fn name_suffix(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" ({n})"),
        None => String::new(),
    }
}
