//! Proxy-wide counters and a latency histogram, updated with relaxed
//! atomics on the request path and read by the once-a-second sampler that
//! turns them into rates and percentiles for `/v1/load` and `/metrics`.
//! Every worker thread counts into its own cache-aligned [`Shard`], so the
//! request path never moves a cache line between cores; readers add the
//! shards up.

use boltz_core::counter::Padded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Log-linear latency buckets: 16 per power of two from 1 µs to ~68 s,
/// so a percentile is exact to about 4%.
const SUB: usize = 16;
const OCTAVES: usize = 26;
pub const BUCKETS: usize = SUB * OCTAVES;

#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bucket(us: u64) -> usize {
    let us = us.max(1);
    let octave = 63 - us.leading_zeros() as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let frac = if octave >= 4 {
        ((us >> (octave - 4)) & 0xf) as usize
    } else {
        ((us << (4 - octave)) & 0xf) as usize
    };
    octave * SUB + frac
}

/// The lower bound of bucket `i` in µs.
fn bucket_floor(i: usize) -> f64 {
    let (octave, frac) = (i / SUB, i % SUB);
    (1u64 << octave) as f64 * (1.0 + frac as f64 / SUB as f64)
}

impl Histogram {
    pub fn record_ns(&self, ns: u64) {
        self.counts[bucket(ns / 1000)].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }
}

/// The `q` quantile (0..1) in ms of the samples between two snapshots.
pub fn quantile_ms(now: &[u64], then: Option<&[u64]>, q: f64) -> Option<f64> {
    let diff: Vec<u64> = match then {
        Some(t) => now
            .iter()
            .zip(t)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect(),
        None => now.to_vec(),
    };
    let total: u64 = diff.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64 * q).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, c) in diff.iter().enumerate() {
        seen += c;
        if seen >= rank {
            // middle of the bucket
            let lo = bucket_floor(i);
            let hi = if i + 1 < BUCKETS {
                bucket_floor(i + 1)
            } else {
                lo
            };
            return Some((lo + hi) / 2.0 / 1000.0);
        }
    }
    None
}

/// One worker's counters (kept on their own cache lines by
/// [`Padded`]).
#[derive(Debug, Default)]
pub struct Shard {
    pub requests: AtomicU64,
    /// Started minus finished here (a request finishes on the worker that
    /// started it; the sum over shards wraps correctly in any case).
    pub in_flight: AtomicU64,
    /// Responses by class: 1xx..5xx at index 1..5 (index 0 unused).
    pub status: [AtomicU64; 6],
    /// Answers boltz made itself, by reason.
    pub no_route: AtomicU64,
    pub rate_limited: AtomicU64,
    pub no_backend: AtomicU64,
    pub overloaded: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub retries_refused: AtomicU64,
    pub upstream_connects: AtomicU64,
    /// Request arrival to response head, every answer.
    pub latency: Histogram,
}

#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Padded<Shard>]>,
}

impl Metrics {
    /// Counters for `workers` worker threads (other threads share shard 0).
    pub fn new(workers: usize) -> Metrics {
        Metrics {
            shards: (0..workers.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    /// The calling thread's shard (its worker's).
    pub fn here(&self) -> &Shard {
        &self.shards[super::worker::worker() % self.shards.len()].0
    }

    /// A counter summed over the shards.
    pub fn total(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |n, s| n.wrapping_add(counter(&s.0).load(Relaxed)))
    }

    pub fn count_status(&self, code: u16) {
        let class = usize::from(code / 100).min(5);
        self.here().status[class].fetch_add(1, Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.total(|s| &s.status[5])
    }

    /// The latency histogram summed over the shards.
    pub fn latency_snapshot(&self) -> Vec<u64> {
        let mut all = vec![0u64; BUCKETS];
        for s in self.shards.iter() {
            for (a, c) in all.iter_mut().zip(s.0.latency.counts.iter()) {
                *a += c.load(Relaxed);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in 1..100_000u64 {
            let b = bucket(us);
            assert!(b >= last);
            last = b;
            let floor = bucket_floor(b);
            assert!(
                floor <= us as f64 && us as f64 <= floor * 1.07,
                "{us} in {b}: {floor}"
            );
        }
        assert_eq!(bucket(u64::MAX / 1000), BUCKETS - 1);
    }

    #[test]
    fn shards_add_up() {
        let st = Metrics::new(2);
        std::thread::scope(|t| {
            for w in 0..2 {
                let st = &st;
                t.spawn(move || {
                    crate::worker::set_worker(w);
                    for _ in 0..1000 {
                        st.here().requests.fetch_add(1, Relaxed);
                        st.here().latency.record_ns(10_000);
                    }
                    st.count_status(503);
                });
            }
        });
        assert_eq!(st.total(|s| &s.requests), 2000);
        assert_eq!(st.errors(), 2);
        assert_eq!(st.latency_snapshot().iter().sum::<u64>(), 2000);
        assert!(st.shards.iter().all(|s| s.0.requests.load(Relaxed) == 1000));
    }

    #[test]
    fn quantiles_between_snapshots() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record_ns(100_000);
        }
        let mid = h.snapshot();
        for _ in 0..10 {
            h.record_ns(5_000_000);
        }
        let now = h.snapshot();
        let p50 = quantile_ms(&now, None, 0.5).unwrap();
        assert!((p50 - 0.1).abs() < 0.01, "{p50}");
        let p99 = quantile_ms(&now, None, 0.99).unwrap();
        assert!((p99 - 5.0).abs() < 0.3, "{p99}");
        let only_slow = quantile_ms(&now, Some(&mid), 0.5).unwrap();
        assert!((only_slow - 5.0).abs() < 0.3);
        assert_eq!(quantile_ms(&now, Some(&now), 0.5), None);
    }
}
