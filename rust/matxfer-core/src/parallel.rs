//! Thread-pool control and cancellation for batch work.
//!
//! Every batch function takes `n_threads: Option<usize>`: `None` reads `MATXFER_NUM_THREADS`,
//! falling back to the number of available cores; at most [`MAX_THREADS`]. Work is split into
//! independent rows written to disjoint output slots, so results are bitwise identical for any
//! thread count.
//!
//! matxfer never uses rayon's global pool. Its own pools are kept in a small cache (at most
//! [`POOL_CACHE`] sizes; the least recently used pool is dropped, and its threads exit, when a new
//! size is asked for), keyed by process id: a process forked after a pool was started (e.g. a
//! PyTorch DataLoader worker) builds fresh threads instead of waiting forever on threads that did
//! not survive the fork, and never touches (or drops) the parent's pools.
//!
//! Long loops call [`check_cancelled`] between chunks of work: once [`request_cancel`] was called
//! (the Python binding does so on Ctrl-C) they stop with [`CoreError::Interrupted`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::CoreError;

/// The largest accepted thread count (an explicit `n_threads` or `MATXFER_NUM_THREADS`).
pub const MAX_THREADS: usize = 1024;
/// Thread pools of distinct sizes kept alive at once.
pub const POOL_CACHE: usize = 2;

fn check_threads(n: usize, what: &str) -> Result<usize, CoreError> {
    if n == 0 || n > MAX_THREADS {
        return Err(CoreError::InvalidArgument(format!("{what} must be between 1 and {MAX_THREADS}, got {n}")));
    }
    Ok(n)
}

/// Thread count from the argument, else `MATXFER_NUM_THREADS`, else `None` (all cores).
pub fn resolve_threads(n_threads: Option<usize>) -> Result<Option<usize>, CoreError> {
    match n_threads {
        Some(n) => check_threads(n, "n_threads").map(Some),
        None => match std::env::var("MATXFER_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) => check_threads(n, "MATXFER_NUM_THREADS").map(Some),
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
pub fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS))
}

struct CachedPool {
    pid: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

/// Pools of this process, most recently used last.
static POOLS: Mutex<Vec<CachedPool>> = Mutex::new(Vec::new());

fn pool_for(n: usize) -> Result<Arc<rayon::ThreadPool>, CoreError> {
    let pid = std::process::id();
    let mut guard = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    // Pools inherited through fork() have no threads behind them: forget them without running
    // their destructors (which would signal threads that do not exist in this process).
    if guard.iter().any(|p| p.pid != pid) {
        let (foreign, own): (Vec<_>, Vec<_>) = std::mem::take(&mut *guard).into_iter().partition(|p| p.pid != pid);
        std::mem::forget(foreign);
        *guard = own;
    }
    if let Some(k) = guard.iter().position(|p| p.threads == n) {
        let entry = guard.remove(k);
        let pool = entry.pool.clone();
        guard.push(entry);
        return Ok(pool);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("matxfer-{i}"))
        .build()
        .map_err(|e| CoreError::InvalidArgument(format!("cannot start {n} threads: {e}")))?;
    let pool = Arc::new(pool);
    guard.push(CachedPool { pid, threads: n, pool: pool.clone() });
    while guard.len() > POOL_CACHE {
        // Dropped here (or when its last running job ends): rayon then stops its threads.
        guard.remove(0);
    }
    Ok(pool)
}

/// Run `f` on a pool of the requested size.
pub fn with_threads<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R, CoreError> {
    let n = effective_threads(n_threads)?;
    let pool = pool_for(n)?;
    Ok(pool.install(f))
}

static CANCEL_PENDING: AtomicBool = AtomicBool::new(false);

/// Ask every running job to stop at its next [`check_cancelled`] (async-signal-safe: two atomic
/// stores).
pub fn request_cancel() {
    CANCEL_PENDING.store(true, Ordering::Release);
}

/// Forget a past cancellation request (before starting new work).
pub fn clear_cancel() {
    CANCEL_PENDING.store(false, Ordering::Release);
}

/// `Err(Interrupted)` once a cancellation was requested (one relaxed load when not).
#[inline]
pub fn check_cancelled() -> Result<(), CoreError> {
    if CANCEL_PENDING.load(Ordering::Acquire) {
        Err(CoreError::Interrupted)
    } else {
        Ok(())
    }
}

/// Whether a cancellation is pending.
#[inline]
pub fn cancelled() -> bool {
    CANCEL_PENDING.load(Ordering::Relaxed)
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
