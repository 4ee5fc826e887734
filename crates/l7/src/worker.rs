//! Which worker thread this is. Each worker thread of the proxy has a
//! number, set once when it starts; per-worker state (picker cursors and
//! schedules, counter shards) is indexed by it.

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `n`.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// The calling thread's worker number (0 on other threads).
pub fn worker() -> usize {
    WORKER.with(Cell::get)
}
