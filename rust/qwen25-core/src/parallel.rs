//! One place that decides how many threads a call uses and runs it.
//!
//! - `num_threads` given by the caller wins; else `QWEN25_NUM_THREADS`; else all cores.
//! - In a forked child (torch DataLoader workers fork) rayon's pool would deadlock, so the binding
//!   calls [`set_forked`] from an `os.register_at_fork` hook and every call then runs serially.
//! - Results never depend on the thread count: `map` keeps input order.

use rayon::prelude::*;
use rayon::ThreadPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

static FORKED: AtomicBool = AtomicBool::new(false);

/// Mark this process as a forked child: parallelism switches itself off.
pub fn set_forked() {
    FORKED.store(true, Ordering::SeqCst);
}

pub fn is_forked() -> bool {
    FORKED.load(Ordering::SeqCst)
}

/// The thread count a call with `requested` threads will use (always >= 1).
pub fn threads(requested: Option<usize>) -> usize {
    if is_forked() {
        return 1;
    }
    if let Some(n) = requested {
        return n.max(1);
    }
    if let Some(n) = std::env::var("QWEN25_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return n.max(1);
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn pool(n: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = pools.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .entry(n)
        .or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("qwen25-{i}"))
                    .build()
                    .expect("failed to start a thread pool"),
            )
        })
        .clone()
}

/// Run `f` on a pool of `n` threads (inline when `n == 1`).
pub fn install<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    if n <= 1 {
        f()
    } else {
        pool(n).install(f)
    }
}

/// Map `f` over `items` on `n` threads, keeping input order.
pub fn map<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    if n <= 1 || items.len() <= 1 {
        items.iter().map(f).collect()
    } else {
        pool(n).install(|| items.par_iter().map(f).collect())
    }
}
