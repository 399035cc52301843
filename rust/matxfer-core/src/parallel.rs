//! Thread-pool control for batch work.
//!
//! Every batch function takes `n_threads: Option<usize>`: `None` reads `MATXFER_NUM_THREADS`,
//! falling back to the number of available cores. Work is split into independent rows written to
//! disjoint output slots, so results are bitwise identical for any thread count.
//!
//! matxfer never uses rayon's global pool: its own pools are keyed by process id, so a process
//! forked after a pool was started (e.g. a PyTorch DataLoader worker) builds fresh threads instead
//! of waiting forever on threads that did not survive the fork.

use std::sync::{Mutex, OnceLock};

use crate::error::CoreError;

/// Thread count from the argument, else `MATXFER_NUM_THREADS`, else `None` (all cores).
pub fn resolve_threads(n_threads: Option<usize>) -> Result<Option<usize>, CoreError> {
    match n_threads {
        Some(0) => Err(CoreError::InvalidArgument("n_threads must be at least 1".into())),
        Some(n) => Ok(Some(n)),
        None => match std::env::var("MATXFER_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(CoreError::InvalidArgument(format!(
                    "MATXFER_NUM_THREADS must be a positive integer, got {v:?}"
                ))),
            },
            _ => Ok(None),
        },
    }
}

/// The number of threads `n_threads` resolves to.
pub fn effective_threads(n_threads: Option<usize>) -> Result<usize, CoreError> {
    Ok(resolve_threads(n_threads)?.unwrap_or_else(available_cores))
}

/// `std::thread::available_parallelism`, asked once per process: on Linux it reads the cgroup
/// CPU quota from /sys each time (about 25 us, more than featurizing a few formulas).
fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

type PoolKey = (u32, usize); // (process id, threads)

/// Run `f` on a pool of the requested size (pools are built once per size and process, then kept).
pub fn with_threads<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R, CoreError> {
    let n = effective_threads(n_threads)?;
    static POOLS: OnceLock<Mutex<Vec<(PoolKey, &'static rayon::ThreadPool)>>> = OnceLock::new();
    let key = (std::process::id(), n);
    let pool = {
        let mut guard = POOLS.get_or_init(|| Mutex::new(Vec::new())).lock().unwrap_or_else(|p| p.into_inner());
        match guard.iter().find(|(k, _)| *k == key) {
            Some((_, p)) => *p,
            None => {
                let p = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("matxfer-{i}"))
                    .build()
                    .map_err(|e| CoreError::InvalidArgument(format!("cannot start {n} threads: {e}")))?;
                // Pools live for the process: a handful of sizes at most in practice.
                let p: &'static rayon::ThreadPool = Box::leak(Box::new(p));
                guard.push((key, p));
                p
            }
        }
    };
    Ok(pool.install(f))
}

/// Ask the kernel to back a large, freshly allocated buffer with transparent huge pages before
/// it is first written: outputs of hundreds of MB are otherwise written through one page fault
/// per 4 KiB. A hint only (no effect on results; ignored where unsupported).
pub fn advise_huge_pages<T>(buffer: &mut [T]) {
    if buffer.is_empty() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(buffer);
        if bytes < 2 * HUGE {
            return;
        }
        let start = buffer.as_mut_ptr() as usize;
        let aligned = (start + HUGE - 1) & !(HUGE - 1);
        let end = (start + bytes) & !(HUGE - 1);
        if end > aligned {
            // SAFETY: the range lies inside `buffer`, which we own mutably; MADV_HUGEPAGE does
            // not change the contents or validity of the memory.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}
