//! The balancing catalogue of `boltz l7`: which backend of a pool gets the
//! next request. A [`Picker`] is built once per pool snapshot (hash ring,
//! Maglev table and weighted round-robin schedule are precomputed there)
//! and shared by every worker thread; [`Picker::pick`] then reads only
//! atomics, a thread-local PRNG and scratch buffer, and at most a per-worker
//! mutex that no other thread touches, so no lock is shared on the request
//! path. Eligibility (health, ejection, breaker, draining, retries already
//! tried, panic mode) and slow start are applied at pick time, so a picker
//! stays right while backends change state between snapshots.
//!
//! This file holds what every algorithm shares: the [`Picker`], what one
//! pick knows ([`PickContext`]), the per-pick weights (eligibility and slow
//! start) and the dispatch to a family, one file each:
//!
//! - `algorithm`: the catalogue's names ([`Algorithm`]).
//! - `random`: the thread-local PRNG and the weighted draw (`random`, and
//!   the fallback of the others).
//! - `p2c`: power of two choices (`p2c-peak-ewma`, `least-request`).
//! - `least`: full scans for the least loaded (`least-connections`,
//!   `least-time`).
//! - `round_robin`: `round-robin`, `weighted-round-robin`,
//!   `smooth-weighted-round-robin`.
//! - `ring`, `maglev`: the consistent-hash structures (`ring-hash`,
//!   `maglev`); `consistent`: the walk both share, with slow-start
//!   thinning and bounded loads.
//! - `boltzmann`: `boltzmann`, `P ∝ w · exp(−E/T)` with E the backend's
//!   load against its capacity and T rising with the pool's utilisation
//!   (the maths is `boltz_steer`'s).

mod algorithm;
mod boltzmann;
mod consistent;
mod least;
mod maglev;
mod p2c;
mod random;
mod ring;
mod round_robin;

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use boltz_core::counter::Padded;
pub use boltz_core::hash::hash_key;

pub use self::algorithm::Algorithm;
pub use self::boltzmann::{validate_capacity, BoltzmannConfig, DEFAULT_CAPACITY};
pub(crate) use self::random::reseed;
use super::backend::{AdminState, Backend};

/// Tuning shared by the algorithms; fixed for a picker's lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct PickOptions {
    /// Slow-start ramp after a backend is added or comes back (0 = off).
    pub slow_start_ns: u64,
    /// Consistent hashing with bounded loads for ring-hash and maglev: a
    /// backend takes a key only while its in-flight count is within `c`
    /// times the average (c ≥ 1.0, e.g. 1.25). `None` = unbounded.
    pub bounded_load: Option<f64>,
    /// Ring points per unit of weight (ring-hash).
    pub ring_vnodes: u32,
    /// Maglev table size; made prime and large enough if it is not.
    pub maglev_size: u32,
    /// Worker threads calling `pick` (each gets its own smooth-WRR state).
    pub workers: usize,
    /// Temperatures and latency weight of `boltzmann`.
    pub boltzmann: BoltzmannConfig,
    /// `boltzmann`: each backend's capacity (requests in flight at energy
    /// 1), in the order of the backends; a missing entry is
    /// `boltzmann.capacity`, else [`DEFAULT_CAPACITY`].
    pub capacity: Vec<f64>,
}

impl Default for PickOptions {
    fn default() -> Self {
        PickOptions {
            slow_start_ns: 0,
            bounded_load: None,
            ring_vnodes: 100,
            maglev_size: boltz_core::maglev::DEFAULT_RING_SIZE,
            // Tokio's multi-threaded runtime starts this many workers.
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            boltzmann: BoltzmannConfig::default(),
            capacity: Vec::new(),
        }
    }
}

/// What one pick knows about its request.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// `boltz_core::clock::precise_ns()`.
    pub now: u64,
    /// Affinity key hash ([`hash_key`]) for ring-hash and maglev; `None`
    /// makes them fall back to P2C.
    pub hash: Option<u64>,
    /// Indexes already tried by this request (retries).
    pub exclude: &'a [usize],
    /// Panic mode: ignore health, ejection and breakers, use every backend
    /// that is not draining.
    pub panic: bool,
    /// The calling worker thread, `< PickOptions::workers`.
    pub worker: usize,
}

impl PickContext<'static> {
    /// A plain pick at `now`: no key, nothing excluded, no panic, worker 0.
    pub fn at(now: u64) -> Self {
        PickContext {
            now,
            hash: None,
            exclude: &[],
            panic: false,
            worker: 0,
        }
    }
}

/// The balancer of one pool snapshot. `pick` must be given the same
/// backend slice (same order) the picker was built from.
pub struct Picker {
    algorithm: Algorithm,
    opts: PickOptions,
    /// Sorted (point, backend index) pairs.
    ring: Vec<(u64, u32)>,
    /// Maglev slot → backend index.
    table: Vec<u32>,
    /// Interleaved backend indexes, each as often as its weight.
    schedule: Vec<u32>,
    /// `hash_key(backend.key)`, to thin a ramping backend's keys
    /// deterministically.
    key_hash: Vec<u64>,
    cursor: Padded<AtomicUsize>,
    /// Smooth-WRR current weights, one vector per worker.
    swrr: Vec<Padded<Mutex<Vec<f64>>>>,
    /// `boltzmann`: each backend's capacity, all positive.
    capacity: Vec<f64>,
}

/// Sizes rather than contents: a pool's `Debug` would otherwise print a
/// 65537-slot table.
impl fmt::Debug for Picker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picker")
            .field("algorithm", &self.algorithm)
            .field("opts", &self.opts)
            .field("ring_points", &self.ring.len())
            .field("table_slots", &self.table.len())
            .field("schedule_len", &self.schedule.len())
            .finish_non_exhaustive()
    }
}

impl Picker {
    pub fn new(algorithm: Algorithm, backends: &[Arc<Backend>], opts: PickOptions) -> Picker {
        let weights: Vec<f64> = backends.iter().map(|b| b.weight()).collect();
        let key_hash = if algorithm.uses_hash() {
            backends
                .iter()
                .map(|b| hash_key(b.key.as_bytes()))
                .collect()
        } else {
            Vec::new()
        };
        let ring = if algorithm == Algorithm::RingHash {
            ring::build_ring(backends, &weights, opts.ring_vnodes)
        } else {
            Vec::new()
        };
        let table = if algorithm == Algorithm::Maglev {
            maglev::build_table(backends, &weights, opts.maglev_size)
        } else {
            Vec::new()
        };
        let schedule = if algorithm == Algorithm::WeightedRoundRobin {
            round_robin::schedule(&weights)
        } else {
            Vec::new()
        };
        let swrr = if algorithm == Algorithm::SmoothWeightedRoundRobin {
            round_robin::smooth_state(backends.len(), opts.workers)
        } else {
            Vec::new()
        };
        let capacity = if algorithm == Algorithm::Boltzmann {
            let fallback = opts.boltzmann.capacity.unwrap_or(DEFAULT_CAPACITY);
            (0..backends.len())
                .map(|i| match opts.capacity.get(i) {
                    Some(&c) if c > 0.0 && c.is_finite() => c,
                    _ => fallback,
                })
                .collect()
        } else {
            Vec::new()
        };
        Picker {
            algorithm,
            opts,
            ring,
            table,
            schedule,
            key_hash,
            cursor: Padded(AtomicUsize::new(0)),
            swrr,
            capacity,
        }
    }

    /// The index into `backends` of the backend for this request, or `None`
    /// when none is eligible.
    pub fn pick(&self, backends: &[Arc<Backend>], ctx: &PickContext) -> Option<usize> {
        if backends.is_empty() {
            return None;
        }
        SCRATCH.with(|s| {
            // One buffer per thread, refilled each pick, saves an
            // allocation per request; pick never re-enters itself, so the
            // borrow cannot fail.
            let mut w = s.borrow_mut();
            w.clear();
            let mut total = 0.0;
            let mut count = 0;
            for (i, b) in backends.iter().enumerate() {
                let x = self.weight_for(b, i, ctx);
                if x > 0.0 {
                    total += x;
                    count += 1;
                }
                w.push(x);
            }
            if count == 0 {
                return None;
            }
            let view = View {
                backends,
                w: &mut w,
                total,
                count,
            };
            self.dispatch(view, ctx)
        })
    }

    /// The backend's weight for this pick, 0 when it may not be chosen.
    fn weight_for(&self, b: &Backend, i: usize, ctx: &PickContext) -> f64 {
        if ctx.exclude.contains(&i) {
            return 0.0;
        }
        let ok = if ctx.panic {
            b.admin_state() == AdminState::Up
        } else {
            b.selectable(ctx.now)
        };
        if !ok {
            return 0.0;
        }
        let x = b.effective_weight(ctx.now, self.opts.slow_start_ns);
        // NaN and infinities would poison every sum below.
        if x > 0.0 && x.is_finite() {
            x
        } else {
            0.0
        }
    }

    /// The algorithm's choice among the eligible backends of `v`.
    fn dispatch(&self, v: View<'_>, ctx: &PickContext) -> Option<usize> {
        match self.algorithm {
            Algorithm::P2cPeakEwma => p2c::peak_ewma(&v),
            Algorithm::LeastRequest => p2c::least_request(&v),
            Algorithm::LeastConnections => least::connections(&v),
            Algorithm::LeastTime => least::time(&v),
            Algorithm::Random => random::draw(v.w, v.total, None),
            Algorithm::RoundRobin => self.round_robin(&v),
            Algorithm::WeightedRoundRobin => self.wrr(&v),
            Algorithm::SmoothWeightedRoundRobin => self.swrr(&v, ctx.worker),
            Algorithm::Boltzmann => self.boltzmann(&v),
            Algorithm::RingHash | Algorithm::Maglev => match ctx.hash {
                Some(h) => self.consistent(v, h),
                None => p2c::peak_ewma(&v),
            },
        }
    }
}

/// The per-pick view: each backend's weight (0 = not eligible).
struct View<'a> {
    backends: &'a [Arc<Backend>],
    w: &'a mut [f64],
    total: f64,
    count: usize,
}

thread_local! {
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Integer weights in the same ratios: thousandths of the f64 weights,
/// divided by their gcd (so 1:2:3 and 0.5:1:1.5 both give 1:2:3), scaled
/// down if they sum to more than `limit` (each positive one stays ≥ 1).
/// Shared by the weighted round-robin schedule and the Maglev table.
fn integer_weights(weights: &[f64], limit: u64) -> Vec<u32> {
    let q: Vec<u64> = weights
        .iter()
        .map(|&w| {
            if w > 0.0 && w.is_finite() {
                ((w * 1000.0).round().min(u32::MAX as f64) as u64).max(1)
            } else {
                0
            }
        })
        .collect();
    let g = q.iter().fold(0, |g, &x| gcd(g, x)).max(1);
    let sum: u64 = q.iter().map(|x| x / g).sum();
    let scale = if sum > limit {
        limit as f64 / sum as f64
    } else {
        1.0
    };
    q.iter()
        .map(|&x| {
            if x == 0 {
                0
            } else {
                (((x / g) as f64 * scale).round() as u32).max(1)
            }
        })
        .collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
