//! Cheap clocks. `CLOCK_MONOTONIC_COARSE` costs a few ns through the vDSO
//! and ticks every few ms: right for idle timeouts and for comparing with
//! the XDP program's `bpf_ktime_get_coarse_ns`, not for latencies.

/// CLOCK_MONOTONIC_COARSE in ns.
pub fn coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
