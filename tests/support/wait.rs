//! Polling with a limit: the integration tests wait for a condition on a
//! real server (a reload applied, a backend ejected) instead of sleeping.

use std::time::{Duration, Instant};

/// Polls `cond` every 25 ms until it holds; panics after `limit` with
/// `log()` (the server's output) attached.
pub fn wait_for(
    what: &str,
    limit: Duration,
    cond: &mut dyn FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}\nserver log:\n{}", log());
}
