//! The clocks of boltz, one name each:
//!
//! - [`coarse_ns`]: `CLOCK_MONOTONIC_COARSE`, a few ns through the vDSO,
//!   ticking every few ms. Right for idle timeouts and for comparing with
//!   the XDP program's `bpf_ktime_get_coarse_ns`; not for latencies.
//! - [`precise_ns`]: nanoseconds since this process first asked, from
//!   `Instant` (`CLOCK_MONOTONIC`): latencies, EWMAs, rate windows.
//! - [`unix_ms`]: wall-clock milliseconds for timestamps that cross
//!   machines (load samples, health reports).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `CLOCK_MONOTONIC_COARSE` in ns: the clock of `bpf_ktime_get_coarse_ns`.
pub fn coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds since the first call in this process (monotonic, precise).
pub fn precise_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Milliseconds since the Unix epoch; `None` if the wall clock is before it.
pub fn unix_ms() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
