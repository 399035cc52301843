//! Documented bounds on inputs and outputs, checked before any buffer is reserved.
//!
//! | what | bound |
//! |---|---|
//! | cutoff (neighbor lists, graphs, RDF) | finite, > 0, at most [`MAX_CUTOFF`] angstrom |
//! | lattice entries | finite, `|x| <= MAX_LATTICE_ENTRY` angstrom; cell volume finite, >= 1e-6 A^3 |
//! | fractional coordinates | finite, `|f| <= MAX_ABS_FRAC` |
//! | periodic images within the cutoff | `prod_k (2 ceil(r_c / d_k) + 1) <= MAX_IMAGES` over periodic axes (`d_k` the perpendicular width) |
//! | output memory of one call | [`memory_budget`]: `MATXFER_MAX_MEMORY` bytes if set, else half the available memory |
//!
//! Pair, edge, triplet and feature counts are estimated from the geometry first and refused when
//! the estimate is far above the ceiling; while the work runs, the actual counts are checked
//! against the ceiling as they grow, so a bad estimate (clustered atoms) cannot exhaust memory.

use crate::error::CoreError;

/// Largest accepted cutoff radius, angstrom.
pub const MAX_CUTOFF: f64 = 1.0e4;
/// Largest accepted |lattice entry|, angstrom.
pub const MAX_LATTICE_ENTRY: f64 = 1.0e8;
/// Largest accepted |fractional coordinate| (image shifts are int32).
pub const MAX_ABS_FRAC: f64 = 1.0e6;
/// Largest number of periodic images of the cell that a cutoff sphere may span.
pub const MAX_IMAGES: f64 = 1.0e7;
/// Largest number of Gaussian basis functions per edge.
pub const MAX_RBF: usize = 4096;
/// Largest number of histogram bins of a radial distribution.
pub const MAX_RDF_BINS: usize = 1_000_000;
/// Largest number of sites of one structure for the sine Coulomb matrix (an `n x n` dense matrix
/// diagonalised in O(n^3)).
pub const MAX_SINE_COULOMB_SITES: usize = 2000;
/// Largest `k` of k-nearest-neighbor graphs.
pub const MAX_K: usize = 100_000;
/// Below this many bytes an output is never checked against the memory budget (no system call).
const SMALL_OUTPUT: f64 = 256.0 * 1024.0 * 1024.0;

/// `x <= bound`, false when either is NaN (so a NaN estimate is always refused).
#[inline]
pub fn at_most(x: f64, bound: f64) -> bool {
    matches!(x.partial_cmp(&bound), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
}

/// Bytes one call may use for its output: `MATXFER_MAX_MEMORY` (bytes, optional suffix `K`, `M`,
/// `G`) if set, else half of `MemAvailable` (Linux), else 8 GiB.
pub fn memory_budget() -> Result<f64, CoreError> {
    if let Ok(v) = std::env::var("MATXFER_MAX_MEMORY") {
        let t = v.trim();
        if !t.is_empty() {
            let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
                Some('K') => (&t[..t.len() - 1], 1024.0),
                Some('M') => (&t[..t.len() - 1], 1024.0 * 1024.0),
                Some('G') => (&t[..t.len() - 1], 1024.0 * 1024.0 * 1024.0),
                _ => (t, 1.0),
            };
            return match num.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(x * mult),
                _ => Err(CoreError::InvalidArgument(format!(
                    "MATXFER_MAX_MEMORY must be a positive number of bytes (suffix K, M or G allowed), got {v:?}"
                ))),
            };
        }
    }
    Ok(available_memory().map_or(8.0 * 1024.0 * 1024.0 * 1024.0, |m| m / 2.0))
}

fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Refuse an output of `bytes` above the memory budget; `what` describes it in the error.
pub fn check_output_bytes(bytes: f64, what: impl FnOnce() -> String) -> Result<(), CoreError> {
    if !at_most(bytes, SMALL_OUTPUT) {
        let budget = memory_budget()?;
        if !at_most(bytes, budget) {
            return Err(CoreError::LimitExceeded(format!(
                "{} would need about {:.3} GB, above the memory ceiling of {:.3} GB (set MATXFER_MAX_MEMORY to change it)",
                what(),
                bytes / 1e9,
                budget / 1e9
            )));
        }
    }
    Ok(())
}

/// The default ceiling on pairs/edges: the memory budget divided by the bytes stored per item.
pub fn default_max_items(bytes_per_item: usize) -> Result<usize, CoreError> {
    Ok((memory_budget()? / bytes_per_item.max(1) as f64).min(usize::MAX as f64 / 4.0) as usize)
}

/// A cutoff radius (angstrom) or other length: finite, positive, at most [`MAX_CUTOFF`].
pub fn check_cutoff(name: &str, value: f64) -> Result<f64, CoreError> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_CUTOFF) {
        return Err(CoreError::InvalidArgument(format!(
            "{name} must be a finite number of angstrom in (0, {MAX_CUTOFF}], got {value}"
        )));
    }
    Ok(value)
}

/// A non-negative finite length such as `min_distance` (0 disables the check it controls).
pub fn check_non_negative(name: &str, value: f64) -> Result<f64, CoreError> {
    if !(value.is_finite() && (0.0..=MAX_CUTOFF).contains(&value)) {
        return Err(CoreError::InvalidArgument(format!(
            "{name} must be a finite number of angstrom in [0, {MAX_CUTOFF}], got {value}"
        )));
    }
    Ok(value)
}
