//! The balancing catalogue of `boltz l7`: which backend of a pool gets the
//! next request. A [`Picker`] is built once per pool snapshot (hash ring,
//! Maglev table and weighted round-robin schedule are precomputed there)
//! and shared by every worker thread; [`Picker::pick`] then reads only
//! atomics, a thread-local PRNG and scratch buffer, and at most a per-worker
//! mutex that no other thread touches, so no lock is shared on the request
//! path. Eligibility (health, ejection, breaker, draining, retries already
//! tried, panic mode) and slow start are applied at pick time, so a picker
//! stays right while backends change state between snapshots.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use boltz_core::counter::Padded;
pub use boltz_core::hash::hash_key;
use boltz_core::hash::{fmix64 as mix64, fnv1a, FNV_OFFSET};

use super::backend::{AdminState, Backend};
use boltz_core::maglev;

/// A load-balancing algorithm, as named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Power of two choices over PeakEWMA cost (Finagle, Linkerd).
    #[default]
    #[serde(alias = "p2c")]
    P2cPeakEwma,
    RoundRobin,
    WeightedRoundRobin,
    SmoothWeightedRoundRobin,
    /// Power of two choices over in-flight requests (Envoy's least_request).
    LeastRequest,
    LeastConnections,
    LeastTime,
    Random,
    RingHash,
    Maglev,
}

impl Algorithm {
    pub const ALL: [Algorithm; 10] = [
        Algorithm::P2cPeakEwma,
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::SmoothWeightedRoundRobin,
        Algorithm::LeastRequest,
        Algorithm::LeastConnections,
        Algorithm::LeastTime,
        Algorithm::Random,
        Algorithm::RingHash,
        Algorithm::Maglev,
    ];

    /// The configuration name (the same as serde's).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::P2cPeakEwma => "p2c-peak-ewma",
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::SmoothWeightedRoundRobin => "smooth-weighted-round-robin",
            Algorithm::LeastRequest => "least-request",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::LeastTime => "least-time",
            Algorithm::Random => "random",
            Algorithm::RingHash => "ring-hash",
            Algorithm::Maglev => "maglev",
        }
    }

    /// Whether the algorithm maps an affinity key (`PickContext::hash`).
    pub fn uses_hash(self) -> bool {
        matches!(self, Algorithm::RingHash | Algorithm::Maglev)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancing algorithm {0:?} (valid: p2c-peak-ewma (or p2c), round-robin, weighted-round-robin, smooth-weighted-round-robin, least-request, least-connections, least-time, random, ring-hash, maglev)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "p2c" {
            return Ok(Algorithm::P2cPeakEwma);
        }
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

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
}

impl Default for PickOptions {
    fn default() -> Self {
        PickOptions {
            slow_start_ns: 0,
            bounded_load: None,
            ring_vnodes: 100,
            maglev_size: maglev::DEFAULT_RING_SIZE,
            // Tokio's multi-threaded runtime starts this many workers.
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
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

/// Weighted round-robin schedules are scaled down to at most this many
/// entries (but at least one per backend).
const MAX_SCHEDULE: u64 = 1 << 16;
/// Ring-hash rings are scaled down to at most this many points (Envoy's
/// default maximum ring size is 8M; 4M points cost 64 MiB).
const MAX_RING_POINTS: u64 = 1 << 22;
/// Maglev weights are scaled to integers summing to at most this.
const MAX_MAGLEV_WEIGHT: u64 = 1 << 20;

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
            build_ring(backends, &weights, opts.ring_vnodes)
        } else {
            Vec::new()
        };
        let table = if algorithm == Algorithm::Maglev {
            build_table(backends, &weights, opts.maglev_size)
        } else {
            Vec::new()
        };
        let schedule = if algorithm == Algorithm::WeightedRoundRobin {
            build_schedule(&integer_weights(&weights, MAX_SCHEDULE))
        } else {
            Vec::new()
        };
        let swrr = if algorithm == Algorithm::SmoothWeightedRoundRobin {
            (0..opts.workers.max(1))
                .map(|_| Padded(Mutex::new(vec![0.0; backends.len()])))
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

    fn dispatch(&self, v: View<'_>, ctx: &PickContext) -> Option<usize> {
        match self.algorithm {
            Algorithm::P2cPeakEwma => p2c(&v, |a, b| b.cost() * P2C_MARGIN < a.cost()),
            Algorithm::LeastRequest => p2c(&v, |a, b| b.in_flight() < a.in_flight()),
            Algorithm::LeastConnections => least(&v, |b, w| f64::from(b.in_flight() + 1) / w),
            Algorithm::LeastTime => least(&v, |b, w| {
                b.ewma.get().max(1.0) * f64::from(b.in_flight() + 1) / w
            }),
            Algorithm::Random => draw(v.w, v.total, None),
            Algorithm::RoundRobin => {
                let k = self.cursor.0.fetch_add(1, Relaxed) % v.count;
                v.w.iter()
                    .enumerate()
                    .filter(|(_, &x)| x > 0.0)
                    .nth(k)
                    .map(|(i, _)| i)
            }
            Algorithm::WeightedRoundRobin => self.wrr(&v),
            Algorithm::SmoothWeightedRoundRobin => self.swrr(&v, ctx.worker),
            Algorithm::RingHash | Algorithm::Maglev => match ctx.hash {
                Some(h) => self.consistent(v, h),
                None => p2c(&v, |a, b| b.cost() * P2C_MARGIN < a.cost()),
            },
        }
    }

    fn wrr(&self, v: &View<'_>) -> Option<usize> {
        if !self.schedule.is_empty() {
            let c = self.cursor.0.fetch_add(1, Relaxed);
            let i = self.schedule[c % self.schedule.len()] as usize;
            if let Some(&x) = v.w.get(i).filter(|&&x| x > 0.0) {
                // The schedule has full weights; a ramping backend keeps
                // the fraction of its turns its ramp allows.
                let full = v.backends[i].weight();
                if x >= full || unit() * full < x {
                    return Some(i);
                }
            }
        }
        // A missed turn (ineligible, excluded or ramping backend) goes to a
        // draw by effective weight, not to the next entry of the schedule:
        // that keeps every share exactly proportional (the scheduled share
        // wᵢ/W plus the missed fraction (1 − E/W) · eᵢ/E adds up to eᵢ/E),
        // where skipping would hand all of it to the schedule's successors.
        draw(v.w, v.total, None)
    }

    fn swrr(&self, v: &View<'_>, worker: usize) -> Option<usize> {
        let slot = &self.swrr[worker % self.swrr.len()].0;
        // Only this worker locks this mutex, so it never waits; a poisoned
        // one only means a panic mid-update, and the weights stay usable.
        let mut cur = slot.lock().unwrap_or_else(|e| e.into_inner());
        if cur.len() != v.w.len() {
            cur.clear();
            cur.resize(v.w.len(), 0.0);
        }
        let mut best: Option<usize> = None;
        for (i, &x) in v.w.iter().enumerate() {
            if x <= 0.0 {
                continue;
            }
            cur[i] += x;
            // Strictly greater: the first maximum wins, as in nginx.
            if best.is_none_or(|b| cur[i] > cur[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        cur[b] -= v.total;
        Some(b)
    }

    /// Ring-hash and maglev: walk from the key's place to the first
    /// backend that is eligible, not thinned by slow start and (with
    /// bounded loads) not over its bound.
    fn consistent(&self, mut v: View<'_>, hash: u64) -> Option<usize> {
        let cap = self.opts.bounded_load.map(|c| {
            let load: u64 =
                v.w.iter()
                    .zip(v.backends)
                    .filter(|(&x, _)| x > 0.0)
                    .map(|(_, b)| u64::from(b.in_flight()))
                    .sum();
            (c.max(1.0) * (load + 1) as f64 / v.count as f64).ceil()
        });
        let walked = if self.algorithm == Algorithm::RingHash {
            let n = self.ring.len();
            let start = self.ring.partition_point(|p| p.0 < hash);
            let order = (0..n).map(|s| self.ring[(start + s) % n].1 as usize);
            self.walk(order, &mut v, hash, cap)
        } else {
            let m = self.table.len();
            let start = if m > 0 { (hash % m as u64) as usize } else { 0 };
            let order = (0..m).map(|s| self.table[(start + s) % m] as usize);
            self.walk(order, &mut v, hash, cap)
        };
        match walked {
            Ok(i) => Some(i),
            // Everyone was thinned or over the bound (racy in-flight
            // reads): the key's own eligible backend beats refusing.
            Err(Some(i)) => Some(i),
            Err(None) => {
                // No structure (e.g. every weight was 0 when it was built)
                // or the eligible backends are not in it: a weighted draw.
                for x in v.w.iter_mut() {
                    *x = x.abs();
                }
                draw(v.w, v.total, None)
            }
        }
    }

    /// Visits backends in `order` until one takes the key; `Err` carries
    /// the first eligible one met, if any.
    fn walk(
        &self,
        order: impl Iterator<Item = usize>,
        v: &mut View<'_>,
        hash: u64,
        cap: Option<f64>,
    ) -> Result<usize, Option<usize>> {
        let mut first = None;
        let mut rejected = 0;
        for i in order {
            let Some(&x) = v.w.get(i) else { continue };
            if x <= 0.0 {
                continue;
            }
            let b = &v.backends[i];
            let full = b.weight();
            // Thinning by (key, backend) rather than at random keeps each
            // key's choice stable, and a key admitted early in the ramp
            // stays admitted as the ramp rises.
            let thinned = x < full && unit_of(mix64(hash ^ self.key_hash[i])) * full >= x;
            let over = cap.is_some_and(|cap| f64::from(b.in_flight()) + 1.0 > cap);
            if !thinned && !over {
                return Ok(i);
            }
            first.get_or_insert(i);
            // Decided for this pick: its other points are skipped.
            v.w[i] = -x;
            rejected += 1;
            if rejected == v.count {
                break;
            }
        }
        Err(first)
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
    static RNG: Cell<u64> = Cell::new(rng_seed());
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

fn rng_seed() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    // RandomState carries per-process random keys; the thread id and the
    // clock make threads of one process differ.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::thread::current().id().hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .hash(&mut h);
    h.finish()
}

/// wyrand: one add and one 64×64→128 multiply per number, passes BigCrush.
fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

/// Uniform in [0, 1).
fn unit() -> f64 {
    unit_of(next_u64())
}

fn unit_of(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Makes this thread's random sequence repeatable.
#[cfg(test)]
fn reseed(seed: u64) {
    RNG.with(|s| s.set(seed));
}

/// A weighted draw among positive weights, `skip` left out (`total` must
/// then exclude its weight).
fn draw(w: &[f64], total: f64, skip: Option<usize>) -> Option<usize> {
    let mut r = unit() * total;
    let mut last = None;
    for (i, &x) in w.iter().enumerate() {
        if x <= 0.0 || Some(i) == skip {
            continue;
        }
        if r < x {
            return Some(i);
        }
        r -= x;
        last = Some(i);
    }
    // Rounding can leave r a hair above the last weight.
    last
}

/// Power of two choices: two distinct backends drawn by weight; the second
/// wins only if strictly `better`, so with equal scores shares follow the
/// weights exactly.
/// How much cheaper the second candidate must be to win a P2C comparison.
/// Latency estimates of equal backends differ by noise (PeakEWMA keeps the
/// last peak for seconds, and a backend that takes more traffic sees more
/// peaks), so a strict comparison would push traffic away from the
/// heaviest backend; inside this margin the first candidate, drawn in
/// proportion to weight, wins, so equal backends split by weight, while a
/// slow, failing or loaded backend (cost several times higher) still loses.
pub const P2C_MARGIN: f64 = 2.0;

fn p2c(v: &View<'_>, better: impl Fn(&Backend, &Backend) -> bool) -> Option<usize> {
    let a = draw(v.w, v.total, None)?;
    if v.count < 2 {
        return Some(a);
    }
    let Some(b) = draw(v.w, v.total - v.w[a], Some(a)) else {
        return Some(a);
    };
    if better(&v.backends[a], &v.backends[b]) {
        Some(b)
    } else {
        Some(a)
    }
}

/// Full scan for the minimum score; ties broken uniformly at random
/// (reservoir sampling), so equal backends share evenly.
fn least(v: &View<'_>, score: impl Fn(&Backend, f64) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    let mut ties = 0u32;
    for (i, &x) in v.w.iter().enumerate() {
        if x <= 0.0 {
            continue;
        }
        let s = score(&v.backends[i], x);
        match best {
            Some((_, bs)) if s > bs => {}
            Some((_, bs)) if s == bs => {
                ties += 1;
                if unit() * f64::from(ties) < 1.0 {
                    best = Some((i, s));
                }
            }
            _ => {
                best = Some((i, s));
                ties = 1;
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The ring: each backend's j-th point at `hash(key "-" j as 8 bytes)`; a point's
/// place depends only on its own backend, so removing one backend moves
/// only that backend's keys.
fn build_ring(backends: &[Arc<Backend>], weights: &[f64], vnodes: u32) -> Vec<(u64, u32)> {
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|&w| {
            if w > 0.0 && w.is_finite() {
                ((w * f64::from(vnodes)).round().min(MAX_RING_POINTS as f64) as u64).max(1)
            } else {
                0
            }
        })
        .collect();
    let sum: u64 = counts.iter().sum();
    if sum > MAX_RING_POINTS {
        let scale = MAX_RING_POINTS as f64 / sum as f64;
        for c in counts.iter_mut().filter(|c| **c > 0) {
            *c = ((*c as f64 * scale).round() as u64).max(1);
        }
    }
    let mut ring = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
    for (i, (b, &n)) in backends.iter().zip(&counts).enumerate() {
        let base = fnv1a(fnv1a(FNV_OFFSET, b.key.as_bytes()), b"-");
        for j in 0..n {
            ring.push((mix64(fnv1a(base, &j.to_le_bytes())), i as u32));
        }
    }
    // Colliding points are ordered by key so the ring does not depend on
    // the order of the backend list.
    ring.sort_unstable_by(|a, b| {
        (a.0, &backends[a.1 as usize].key).cmp(&(b.0, &backends[b.1 as usize].key))
    });
    ring
}

/// The Maglev table as backend indexes; empty when no backend has a weight
/// (or there are too many backends for the largest table), which makes
/// maglev picks fall back to a weighted draw.
fn build_table(backends: &[Arc<Backend>], weights: &[f64], size: u32) -> Vec<u32> {
    // A repeated address gets no slots of its own (the builder refuses
    // duplicates); its first occurrence takes them.
    let mut seen = std::collections::HashSet::new();
    let mut owner = Vec::new();
    let mut w = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        if seen.insert(b.key.as_str()) {
            owner.push(i as u32);
            w.push(weights[i]);
        }
    }
    let iw = integer_weights(&w, MAX_MAGLEV_WEIGHT);
    let members: Vec<maglev::Member<'_>> = owner
        .iter()
        .zip(&iw)
        .map(|(&i, &weight)| maglev::Member {
            key: backends[i as usize].key.as_bytes(),
            weight,
        })
        .collect();
    let mut size = size.min(maglev::MAX_RING_SIZE);
    if !maglev::is_prime(size) {
        size = maglev::next_prime_at_least(size);
    }
    let table = match maglev::build(&members, size) {
        Err(maglev::MaglevError::TooSmall { min, .. })
            if min <= u64::from(maglev::MAX_RING_SIZE) =>
        {
            maglev::build(&members, maglev::next_prime_at_least(min as u32))
        }
        other => other,
    };
    table
        .map(|t| t.into_iter().map(|m| owner[m as usize]).collect())
        .unwrap_or_default()
}

/// Integer weights in the same ratios: thousandths of the f64 weights,
/// divided by their gcd (so 1:2:3 and 0.5:1:1.5 both give 1:2:3), scaled
/// down if they sum to more than `limit` (each positive one stays ≥ 1).
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

/// Earliest deadline first with half-period phases: backend i's k-th turn
/// is due at (k + ½)/wᵢ, so turns are spread through the cycle instead of
/// bunched (weights 1:2:3 give c b a c b c).
fn build_schedule(weights: &[u32]) -> Vec<u32> {
    let mut turns: Vec<(f64, u32)> = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        for k in 0..w {
            turns.push(((f64::from(k) + 0.5) / f64::from(w), i as u32));
        }
    }
    turns.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    turns.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Health;
    use crate::breaker::BreakerConfig;
    use boltz_core::clock::precise_ns;
    use std::time::Duration;

    fn pool(weights: &[f64]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr = format!("127.0.0.1:{}", 10_000 + i).parse().unwrap();
                Arc::new(Backend::new(addr, w, AdminState::Up))
            })
            .collect()
    }

    fn opts() -> PickOptions {
        PickOptions {
            workers: 2,
            // 100 points per backend leave ring shares ±20% apart, which
            // is ring hashing, not a bug; 1000 lets the tests check weights.
            ring_vnodes: 1000,
            ..PickOptions::default()
        }
    }

    /// Shares of `n` picks with a fresh key per pick for the hash pickers.
    fn shares(p: &Picker, b: &[Arc<Backend>], n: usize, now: u64) -> Vec<f64> {
        let mut c = vec![0usize; b.len()];
        for k in 0..n {
            let ctx = PickContext {
                hash: Some(hash_key(&(k as u64).to_le_bytes())),
                ..PickContext::at(now)
            };
            c[p.pick(b, &ctx).unwrap()] += 1;
        }
        c.iter().map(|&x| x as f64 / n as f64).collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= tol,
                "{what}: got {got:?}, want {want:?} ± {tol}"
            );
        }
    }

    #[test]
    fn names_parse_print_and_deserialize() {
        for a in Algorithm::ALL {
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), a);
        }
        assert_eq!(Algorithm::default(), Algorithm::P2cPeakEwma);
        assert_eq!("p2c".parse::<Algorithm>(), Ok(Algorithm::P2cPeakEwma));
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"p2c\"").unwrap(),
            Algorithm::P2cPeakEwma
        );
        #[derive(Deserialize)]
        struct Pool {
            algorithm: Algorithm,
        }
        let p: Pool = toml::from_str("algorithm = \"smooth-weighted-round-robin\"").unwrap();
        assert_eq!(p.algorithm, Algorithm::SmoothWeightedRoundRobin);
        let e = "wrr".parse::<Algorithm>().unwrap_err().to_string();
        assert!(
            e.contains("\"wrr\"") && e.contains("least-time") && e.contains("maglev"),
            "{e}"
        );
        assert!(toml::from_str::<Pool>("algorithm = \"wrr\"").is_err());
    }

    #[test]
    fn equal_backends_share_evenly() {
        let b = pool(&[1.0; 4]);
        let now = precise_ns();
        for a in Algorithm::ALL {
            reseed(7);
            let p = Picker::new(a, &b, opts());
            // The ring with 100 points per backend is the least even.
            let tol = if a == Algorithm::RingHash { 0.03 } else { 0.02 };
            assert_close(&shares(&p, &b, 40_000, now), &[0.25; 4], tol, a.name());
        }
    }

    #[test]
    fn weights_one_two_three_are_respected() {
        let b = pool(&[1.0, 2.0, 3.0]);
        let want = [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0];
        let now = precise_ns();
        for a in Algorithm::ALL {
            // Round robin ignores weights; the least-* pickers use them
            // only to scale load (idle, the heaviest always wins).
            if matches!(
                a,
                Algorithm::RoundRobin | Algorithm::LeastConnections | Algorithm::LeastTime
            ) {
                continue;
            }
            reseed(11);
            let p = Picker::new(a, &b, opts());
            let tol = if a == Algorithm::RingHash {
                0.04
            } else {
                0.015
            };
            assert_close(&shares(&p, &b, 60_000, now), &want, tol, a.name());
        }
        // Round robin ignores weights.
        let p = Picker::new(Algorithm::RoundRobin, &b, opts());
        assert_close(
            &shares(&p, &b, 6000, now),
            &[1.0 / 3.0; 3],
            1e-9,
            "round-robin",
        );
    }

    #[test]
    fn weighted_round_robin_is_exact_and_interleaved() {
        let b = pool(&[1.0, 2.0, 3.0]);
        let p = Picker::new(Algorithm::WeightedRoundRobin, &b, opts());
        let ctx = PickContext::at(precise_ns());
        let seq: Vec<usize> = (0..12).map(|_| p.pick(&b, &ctx).unwrap()).collect();
        assert_eq!(seq, [2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2]);
        // Fractional weights in the same ratios give the same schedule.
        let f = pool(&[0.5, 1.0, 1.5]);
        let q = Picker::new(Algorithm::WeightedRoundRobin, &f, opts());
        let seq2: Vec<usize> = (0..12).map(|_| q.pick(&f, &ctx).unwrap()).collect();
        assert_eq!(seq, seq2);
    }

    #[test]
    fn smooth_weighted_round_robin_follows_nginx_per_worker() {
        let b = pool(&[5.0, 1.0, 1.0]);
        let p = Picker::new(Algorithm::SmoothWeightedRoundRobin, &b, opts());
        let now = precise_ns();
        let w0 = PickContext::at(now);
        let w1 = PickContext { worker: 1, ..w0 };
        let mut s0 = Vec::new();
        let mut s1 = Vec::new();
        // Interleaved workers do not disturb each other's sequence.
        for _ in 0..14 {
            s0.push(p.pick(&b, &w0).unwrap());
            s1.push(p.pick(&b, &w1).unwrap());
        }
        let nginx = [0, 0, 1, 0, 2, 0, 0];
        assert_eq!(s0[..7], nginx);
        assert_eq!(s0[7..], nginx);
        assert_eq!(s0, s1);
        // A worker index past the configured count still works.
        let w9 = PickContext { worker: 9, ..w0 };
        assert!(p.pick(&b, &w9).is_some());
    }

    #[test]
    fn smooth_wrr_and_round_robin_under_threads() {
        let b = pool(&[5.0, 1.0, 1.0]);
        for a in [
            Algorithm::SmoothWeightedRoundRobin,
            Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin,
        ] {
            let p = Arc::new(Picker::new(
                a,
                &b,
                PickOptions {
                    workers: 4,
                    ..opts()
                },
            ));
            let now = precise_ns();
            let counts: Vec<Vec<usize>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|worker| {
                        let (p, b) = (&p, &b);
                        s.spawn(move || {
                            let ctx = PickContext {
                                worker,
                                ..PickContext::at(now)
                            };
                            let mut c = vec![0; 3];
                            for _ in 0..7000 {
                                c[p.pick(b, &ctx).unwrap()] += 1;
                            }
                            c
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let total: Vec<usize> = (0..3).map(|i| counts.iter().map(|c| c[i]).sum()).collect();
            let want = if a == Algorithm::RoundRobin {
                [28_000 / 3 + 1, 28_000 / 3, 28_000 / 3]
            } else {
                [20_000, 4000, 4000]
            };
            // Shared cursors hand out each turn exactly once.
            assert_eq!(total, want, "{}", a.name());
            if a == Algorithm::SmoothWeightedRoundRobin {
                assert!(
                    counts.iter().all(|c| c == &[5000, 1000, 1000]),
                    "{counts:?}"
                );
            }
        }
    }

    #[test]
    fn p2c_avoids_slow_and_busy_backends() {
        let b = pool(&[1.0; 3]);
        let now = precise_ns();
        for x in &b {
            x.ewma.observe(1e6, now, 1e9);
        }
        b[1].ewma.observe(100e6, now, 1e9);
        reseed(3);
        let p = Picker::new(Algorithm::P2cPeakEwma, &b, opts());
        let s = shares(&p, &b, 10_000, now);
        assert_eq!(s[1], 0.0, "slow backend loses every comparison: {s:?}");
        assert_close(&s, &[0.5, 0.0, 0.5], 0.02, "p2c");

        let c = pool(&[1.0; 3]);
        let held: Vec<_> = (0..50).map(|_| c[2].start()).collect();
        for a in [Algorithm::P2cPeakEwma, Algorithm::LeastRequest] {
            let p = Picker::new(a, &c, opts());
            let s = shares(&p, &c, 10_000, now);
            assert_eq!(s[2], 0.0, "{}: busy backend picked {s:?}", a.name());
        }
        drop(held);
        let p = Picker::new(Algorithm::LeastRequest, &c, opts());
        assert!(shares(&p, &c, 3000, now)[2] > 0.25, "in-flight released");
    }

    #[test]
    fn least_connections_and_least_time_take_the_minimum() {
        let b = pool(&[1.0, 1.0, 1.0, 2.0]);
        let now = precise_ns();
        let _g: Vec<_> = [(0, 3), (1, 1), (2, 4), (3, 3)]
            .iter()
            .flat_map(|&(i, n)| (0..n).map(move |_| i))
            .map(|i| b[i].start())
            .collect();
        // (in_flight+1)/weight: 4, 2, 5, 2 → a tie between 1 and 3.
        reseed(5);
        let p = Picker::new(Algorithm::LeastConnections, &b, opts());
        let s = shares(&p, &b, 4000, now);
        assert_close(&s, &[0.0, 0.5, 0.0, 0.5], 0.04, "least-connections");
        assert_eq!(s[0] + s[2], 0.0);

        for (x, ms) in b.iter().zip([1.0, 5.0, 1.0, 1.5]) {
            x.ewma.observe(ms * 1e6, now, 1e9);
        }
        // ewma × (in_flight+1)/weight: 4, 10, 5, 3.
        let p = Picker::new(Algorithm::LeastTime, &b, opts());
        assert_eq!(shares(&p, &b, 100, now), [0.0, 0.0, 0.0, 1.0]);
    }

    /// Backends 1..=4 made unusable in different ways; 0 and 5 are fine.
    fn troubled() -> Vec<Arc<Backend>> {
        let b = pool(&[1.0; 6]);
        let now = precise_ns();
        b[1].set_admin(1.0, AdminState::Drain);
        b[2].ejected_until.store(now + 3_600_000_000_000, Relaxed);
        b[3].set_health(Health::Down);
        b[4].breaker.configure(Some(BreakerConfig {
            failure_rate: 0.5,
            min_requests: 1,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(3600),
            half_open_requests: 1,
        }));
        b[4].breaker.on_result(now, true);
        b
    }

    #[test]
    fn unusable_backends_are_skipped_except_in_panic_mode() {
        let b = troubled();
        let now = precise_ns();
        for a in Algorithm::ALL {
            let p = Picker::new(a, &b, opts());
            let mut seen = [0usize; 6];
            let mut panic_seen = [0usize; 6];
            // Separate loops: alternating would give round robin's shared
            // cursor only even turns in one mode.
            for k in 0..3000u64 {
                let hash = Some(hash_key(&k.to_le_bytes()));
                let ctx = PickContext {
                    hash,
                    ..PickContext::at(now)
                };
                seen[p.pick(&b, &ctx).unwrap()] += 1;
            }
            for k in 0..3000u64 {
                let hash = Some(hash_key(&k.to_le_bytes()));
                let ctx = PickContext {
                    hash,
                    panic: true,
                    ..PickContext::at(now)
                };
                panic_seen[p.pick(&b, &ctx).unwrap()] += 1;
            }
            assert!(seen[1..5].iter().all(|&x| x == 0), "{}: {seen:?}", a.name());
            assert!(seen[0] > 0 && seen[5] > 0, "{}: {seen:?}", a.name());
            assert_eq!(panic_seen[1], 0, "{}: drained in panic mode", a.name());
            assert!(
                panic_seen
                    .iter()
                    .enumerate()
                    .all(|(i, &x)| i == 1 || x > 200),
                "{}: panic mode {panic_seen:?}",
                a.name()
            );
        }
    }

    #[test]
    fn nothing_eligible_gives_none() {
        let b = troubled();
        let now = precise_ns();
        for a in Algorithm::ALL {
            let p = Picker::new(a, &b, opts());
            let ctx = PickContext {
                exclude: &[0, 5],
                hash: Some(42),
                ..PickContext::at(now)
            };
            assert_eq!(p.pick(&b, &ctx), None, "{}", a.name());
            assert_eq!(p.pick(&[], &ctx), None);
            let z = pool(&[0.0, 0.0]);
            let pz = Picker::new(a, &z, opts());
            assert_eq!(
                pz.pick(&z, &PickContext::at(now)),
                None,
                "{}: weight 0",
                a.name()
            );
        }
    }

    #[test]
    fn excluded_backends_are_not_retried() {
        let b = pool(&[1.0, 1.0, 1.0, 1.0]);
        let now = precise_ns();
        for a in Algorithm::ALL {
            let p = Picker::new(a, &b, opts());
            let mut seen = [0usize; 4];
            for k in 0..2000u64 {
                let ctx = PickContext {
                    hash: Some(hash_key(&k.to_le_bytes())),
                    exclude: &[0, 2],
                    ..PickContext::at(now)
                };
                seen[p.pick(&b, &ctx).unwrap()] += 1;
            }
            assert_eq!(seen[0] + seen[2], 0, "{}: {seen:?}", a.name());
            assert!(seen[1] > 600 && seen[3] > 600, "{}: {seen:?}", a.name());
        }
    }

    #[test]
    fn round_robin_spreads_evenly_around_a_hole() {
        let b = pool(&[1.0; 4]);
        b[1].set_health(Health::Down);
        let p = Picker::new(Algorithm::RoundRobin, &b, opts());
        let s = shares(&p, &b, 3000, precise_ns());
        assert_close(&s, &[1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0], 1e-9, "rr");
    }

    fn owner_keys(p: &Picker, b: &[Arc<Backend>], keys: u64, now: u64) -> Vec<String> {
        (0..keys)
            .map(|k| {
                let ctx = PickContext {
                    hash: Some(hash_key(format!("client-{k}").as_bytes())),
                    ..PickContext::at(now)
                };
                b[p.pick(b, &ctx).unwrap()].key.clone()
            })
            .collect()
    }

    #[test]
    fn consistent_hashing_is_stable_and_moves_little() {
        let now = precise_ns();
        let n = 10;
        let full = pool(&[1.0; 10]);
        // The default ring: 100 points per backend.
        let opts = || PickOptions::default();
        for a in [Algorithm::RingHash, Algorithm::Maglev] {
            let p = Picker::new(a, &full, opts());
            let before = owner_keys(&p, &full, 20_000, now);
            // Same key, same backend: again, from another picker, and from
            // the list in another order.
            assert_eq!(before, owner_keys(&p, &full, 20_000, now));
            let rev: Vec<_> = full.iter().rev().cloned().collect();
            let pr = Picker::new(a, &rev, opts());
            assert_eq!(before, owner_keys(&pr, &rev, 20_000, now), "{}", a.name());

            let gone = full[3].key.clone();
            let fewer: Vec<_> = full.iter().filter(|b| b.key != gone).cloned().collect();
            let pf = Picker::new(a, &fewer, opts());
            let after = owner_keys(&pf, &fewer, 20_000, now);
            let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count() as f64 / 20_000.0;
            let orphaned = before.iter().filter(|k| **k == gone).count() as f64 / 20_000.0;
            assert!(after.iter().all(|k| *k != gone));
            assert!(
                (orphaned - 1.0 / n as f64).abs() < 0.03,
                "{}: {orphaned}",
                a.name()
            );
            if a == Algorithm::RingHash {
                assert_eq!(
                    moved, orphaned,
                    "ring: only the removed backend's keys move"
                );
            } else {
                // A fresh Maglev fill disturbs a little more than 1/N.
                assert!(moved < 1.6 / n as f64, "maglev moved {moved}");
            }
            // An unhealthy backend's keys go elsewhere, and come back.
            full[3].set_health(Health::Down);
            let down = owner_keys(&p, &full, 20_000, now);
            assert!(down.iter().all(|k| *k != gone));
            let changed =
                before.iter().zip(&down).filter(|(x, y)| x != y).count() as f64 / 20_000.0;
            assert_eq!(
                changed,
                orphaned,
                "{}: only the down backend's keys move",
                a.name()
            );
            full[3].set_health(Health::Up);
            assert_eq!(before, owner_keys(&p, &full, 20_000, now));
        }
    }

    #[test]
    fn bounded_load_spills_a_hot_key() {
        let b = pool(&[1.0; 4]);
        let now = precise_ns();
        let hot = hash_key(b"hot-client");
        for a in [Algorithm::RingHash, Algorithm::Maglev] {
            let bounded = PickOptions {
                bounded_load: Some(1.25),
                ..opts()
            };
            let p = Picker::new(a, &b, bounded);
            let ctx = PickContext {
                hash: Some(hot),
                ..PickContext::at(now)
            };
            let home = p.pick(&b, &ctx).unwrap();
            // Each request stays in flight: the home backend takes the key
            // while within ceil(1.25 × (total+1) / 4) and then spills.
            let mut held = Vec::new();
            let mut picks = Vec::new();
            for _ in 0..40 {
                let i = p.pick(&b, &ctx).unwrap();
                picks.push(i);
                held.push(b[i].start());
                let total: u32 = b.iter().map(|x| x.in_flight()).sum();
                let cap = (1.25 * f64::from(total) / 4.0).ceil() as u32;
                assert!(
                    b.iter().all(|x| x.in_flight() <= cap.max(1)),
                    "{}",
                    a.name()
                );
            }
            assert_eq!(picks[0], home);
            assert!(
                picks.iter().filter(|&&i| i == home).count() < 20,
                "{}: {picks:?}",
                a.name()
            );
            assert!(
                (0..4).all(|i| picks.contains(&i)),
                "{}: spilled everywhere",
                a.name()
            );
            // Unbounded, the hot key sticks to its backend regardless.
            let q = Picker::new(a, &b, opts());
            assert!((0..20).all(|_| q.pick(&b, &ctx) == Some(home)));
            drop(held);
            assert_eq!(p.pick(&b, &ctx), Some(home), "load gone, key home");
        }
    }

    #[test]
    fn slow_start_gives_a_fresh_backend_a_small_share() {
        let b = pool(&[1.0; 3]);
        let slow = 10_000_000_000;
        // Backend 2 came back from an ejection 1 s ago; the others have
        // long been in service: its weight is 0.1 + 0.9 × 0.1 = 0.19.
        let back = precise_ns() + 100 * slow;
        b[2].ejected_until.store(back, Relaxed);
        let now = back + slow / 10;
        let fresh = 0.19 / 2.19;
        for a in Algorithm::ALL {
            if a == Algorithm::RoundRobin {
                continue;
            }
            reseed(13);
            let p = Picker::new(
                a,
                &b,
                PickOptions {
                    slow_start_ns: slow,
                    ..opts()
                },
            );
            let s = shares(&p, &b, 40_000, now);
            if matches!(a, Algorithm::LeastConnections | Algorithm::LeastTime) {
                // Idle, its score 1/0.19 is never the minimum.
                assert_eq!(s[2], 0.0, "{}: {s:?}", a.name());
            } else {
                let tol = if a.uses_hash() { 0.03 } else { 0.015 };
                assert!((s[2] - fresh).abs() < tol, "{}: {s:?} vs {fresh}", a.name());
            }
            // Ramp over: equal again.
            let s = shares(&p, &b, 30_000, back + slow);
            let tol = if a == Algorithm::RingHash { 0.03 } else { 0.02 };
            assert_close(&s, &[1.0 / 3.0; 3], tol, a.name());
        }
    }

    #[test]
    fn hash_falls_back_to_p2c_without_a_key() {
        let b = pool(&[1.0, 3.0]);
        reseed(17);
        for a in [Algorithm::RingHash, Algorithm::Maglev] {
            let p = Picker::new(a, &b, opts());
            let mut c = [0usize; 2];
            for _ in 0..8000 {
                c[p.pick(&b, &PickContext::at(precise_ns())).unwrap()] += 1;
            }
            assert!((c[1] as f64 / 8000.0 - 0.75).abs() < 0.02, "{c:?}");
        }
    }

    #[test]
    fn maglev_table_survives_odd_sizes_and_duplicates() {
        let mut b = pool(&[1.0; 3]);
        b.push(b[0].clone());
        let p = Picker::new(
            Algorithm::Maglev,
            &b,
            PickOptions {
                maglev_size: 1000,
                ..opts()
            },
        );
        assert_eq!(p.table.len(), 1009, "made prime");
        let dbg = format!("{p:?}");
        assert!(
            dbg.contains("table_slots: 1009") && dbg.len() < 400,
            "{dbg}"
        );
        assert!(p.table.iter().all(|&i| i < 3), "the duplicate owns nothing");
        let big = pool(&vec![1.0; 700]);
        let p = Picker::new(Algorithm::Maglev, &big, opts());
        assert!(p.table.len() >= 70_000 && maglev::is_prime(p.table.len() as u32));
    }

    #[test]
    fn integer_weights_keep_ratios() {
        assert_eq!(integer_weights(&[1.0, 2.0, 3.0], 100), [1, 2, 3]);
        assert_eq!(integer_weights(&[0.5, 1.0, 1.5], 100), [1, 2, 3]);
        assert_eq!(
            integer_weights(&[0.0, 2.5, f64::NAN, -1.0], 100),
            [0, 1, 0, 0]
        );
        assert_eq!(integer_weights(&[1000.0, 1.0], 101), [101, 1]);
        assert_eq!(integer_weights(&[0.001, 1.0], 1 << 20), [1, 1000]);
        assert_eq!(build_schedule(&[1, 2, 3]), [2, 1, 0, 2, 1, 2]);
    }
}
