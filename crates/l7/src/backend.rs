//! One backend's live state, shared by every worker thread through an
//! `Arc` and updated with atomics only (no lock on the request path):
//! in-flight count, PeakEWMA latency, a decaying failure rate, active-check
//! health, outlier ejection, slow-start anchor, circuit breaker and
//! counters. Pool updates through the API keep the same `Backend` for an
//! address that stays, so all of this survives a reweight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use boltz_core::counter::AtomicF64;

use boltz_core::clock::precise_ns;

use super::breaker::Breaker;

/// Peak-sensitive EWMA of response latency (Finagle's and Linkerd's
/// PeakEWMA): a sample above the average replaces it at once, a lower one
/// is blended in with a weight that decays with the time since the last
/// sample (time constant `tau`), so a backend that slows down is avoided
/// immediately and trusted again gradually.
#[derive(Debug)]
pub struct PeakEwma {
    /// ns; 0 = nothing observed yet
    value: AtomicF64,
    stamp: AtomicU64,
}

impl PeakEwma {
    pub fn new() -> Self {
        PeakEwma {
            value: AtomicF64::new(0.0),
            stamp: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, rtt_ns: f64, now: u64, tau_ns: f64) {
        let prev = self.value.get();
        let then = self.stamp.swap(now, Relaxed);
        let next = if prev == 0.0 || rtt_ns > prev {
            rtt_ns
        } else {
            let w = (-(now.saturating_sub(then) as f64) / tau_ns).exp();
            prev * w + rtt_ns * (1.0 - w)
        };
        self.value.set(next);
    }

    /// The current estimate in ns (0 before the first sample).
    pub fn get(&self) -> f64 {
        self.value.get()
    }
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new()
    }
}

/// Result of the active health checks (Unknown until one finishes: usable).
pub use boltz_health::Health;

/// The operator's state for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    #[default]
    Up,
    /// In-flight requests finish; no new ones.
    Drain,
}

/// Time constant of the failure rate's decay while no request is made.
const FAIL_TAU_NS: f64 = 10e9;
/// Weight of one outcome in the failure rate.
const FAIL_ALPHA: f64 = 0.05;

#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Host:port text, the identity hashed by the consistent-hash pickers.
    pub key: String,
    weight: AtomicF64,
    draining: AtomicBool,
    in_flight: AtomicU32,
    pub ewma: PeakEwma,
    fail_rate: AtomicF64,
    fail_stamp: AtomicU64,
    health: AtomicU8,
    /// Consecutive 5xx answers and connect failures (outlier detection).
    pub consecutive_5xx: AtomicU32,
    pub consecutive_connect_failures: AtomicU32,
    /// precise_ns() until which the backend is ejected (0 = not ejected).
    pub ejected_until: AtomicU64,
    /// How many times it has been ejected (the ejection time grows with it).
    pub ejections: AtomicU32,
    /// precise_ns() of the last (re)entry into service, for slow start.
    ramp_from: AtomicU64,
    pub breaker: Breaker,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl Backend {
    pub fn new(addr: SocketAddr, weight: f64, state: AdminState) -> Backend {
        Backend {
            addr,
            key: addr.to_string(),
            weight: AtomicF64::new(weight),
            draining: AtomicBool::new(state == AdminState::Drain),
            in_flight: AtomicU32::new(0),
            ewma: PeakEwma::new(),
            fail_rate: AtomicF64::new(0.0),
            fail_stamp: AtomicU64::new(0),
            health: AtomicU8::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_connect_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            ramp_from: AtomicU64::new(precise_ns()),
            breaker: Breaker::default(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Applies the operator's weight and state (a pool update).
    pub fn set_admin(&self, weight: f64, state: AdminState) {
        self.weight.set(weight);
        self.draining.store(state == AdminState::Drain, Relaxed);
    }

    pub fn weight(&self) -> f64 {
        self.weight.get()
    }

    pub fn admin_state(&self) -> AdminState {
        if self.draining.load(Relaxed) {
            AdminState::Drain
        } else {
            AdminState::Up
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// Counts a request in; the returned guard counts it out when dropped.
    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    pub fn health(&self) -> Health {
        match self.health.load(Relaxed) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }

    pub fn set_health(&self, h: Health) {
        let v = match h {
            Health::Unknown => 0,
            Health::Up => 1,
            Health::Down => 2,
        };
        let old = self.health.swap(v, Relaxed);
        if old == 2 && v == 1 {
            // Back from down: ramp up again.
            self.ramp_from.store(precise_ns(), Relaxed);
        }
    }

    pub fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Relaxed) > now
    }

    /// Whether the balancer may choose it for a new request at `now`:
    /// not draining, not down, not ejected, breaker not open.
    pub fn selectable(&self, now: u64) -> bool {
        !self.draining.load(Relaxed)
            && self.health() != Health::Down
            && !self.is_ejected(now)
            && self.breaker.admits_new(now)
    }

    /// Healthy in the panic-threshold sense: not down and not ejected
    /// (draining backends are not counted at all).
    pub fn healthy(&self, now: u64) -> bool {
        self.health() != Health::Down && !self.is_ejected(now)
    }

    /// The weight to balance with: the operator's, ramped linearly from
    /// 10% over `slow_start_ns` after the backend was added or came back
    /// (from down or from an ejection).
    pub fn effective_weight(&self, now: u64, slow_start_ns: u64) -> f64 {
        let w = self.weight.get();
        if slow_start_ns == 0 {
            return w;
        }
        let from = self
            .ramp_from
            .load(Relaxed)
            .max(self.ejected_until.load(Relaxed));
        let age = now.saturating_sub(from);
        if age >= slow_start_ns {
            return w;
        }
        w * (0.1 + 0.9 * age as f64 / slow_start_ns as f64)
    }

    /// Recent failure rate in [0, 1] (5xx and connect failures): an
    /// average over about the last 20 requests, fading in quiet times.
    pub fn fail_rate(&self) -> f64 {
        self.fail_rate.get()
    }

    /// Records the outcome of one request for the balancer: a success's
    /// latency goes into the PeakEWMA; every outcome into the failure rate
    /// (a backend that answers fast 5xx must not look fast).
    pub fn record(&self, rtt_ns: u64, failed: bool, now: u64, tau_ns: f64) {
        if !failed {
            self.ewma.observe(rtt_ns as f64, now, tau_ns);
        } else {
            self.failures.fetch_add(1, Relaxed);
        }
        // Per request: about the last 20 outcomes; per second of quiet:
        // forgotten with a 10 s time constant.
        let then = self.fail_stamp.swap(now, Relaxed);
        let quiet = (-(now.saturating_sub(then) as f64) / FAIL_TAU_NS).exp();
        let f = self.fail_rate.get() * quiet * (1.0 - FAIL_ALPHA)
            + if failed { FAIL_ALPHA } else { 0.0 };
        self.fail_rate.set(f.min(1.0));
    }

    /// The P2C cost: PeakEWMA latency × (in-flight + 1), raised steeply by
    /// recent failures. A backend with no latency sample yet costs only its
    /// in-flight count, so it is tried (slow start limits how often).
    pub fn cost(&self) -> f64 {
        let lat = self.ewma.get().max(1.0);
        let pending = f64::from(self.in_flight() + 1);
        let f = self.fail_rate();
        lat * pending * (1.0 + 20.0 * f) / (1.0 - f).max(0.01)
    }
}

/// A request counted in a backend's in-flight number until dropped.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let e = PeakEwma::new();
        e.observe(1000.0, 1, 1e9);
        assert_eq!(e.get(), 1000.0);
        e.observe(5000.0, 2, 1e9);
        assert_eq!(e.get(), 5000.0, "a peak replaces the average");
        e.observe(1000.0, 2 + 1_000_000_000, 1e9);
        let v = e.get();
        assert!(v > 1000.0 && v < 3000.0, "{v}");
    }

    #[test]
    fn slow_start_ramps_from_ten_percent() {
        let b = Backend::new("127.0.0.1:1".parse().unwrap(), 2.0, AdminState::Up);
        let t0 = b.ramp_from.load(Relaxed);
        assert!((b.effective_weight(t0, 10_000) - 0.2).abs() < 1e-9);
        assert!((b.effective_weight(t0 + 5_000, 10_000) - 1.1).abs() < 1e-9);
        assert_eq!(b.effective_weight(t0 + 10_000, 10_000), 2.0);
        assert_eq!(b.effective_weight(t0, 0), 2.0);
    }

    #[test]
    fn failures_raise_the_cost() {
        let a = Backend::new("127.0.0.1:1".parse().unwrap(), 1.0, AdminState::Up);
        let b = Backend::new("127.0.0.1:2".parse().unwrap(), 1.0, AdminState::Up);
        let mut now = 1;
        for _ in 0..20 {
            now += 1_000_000;
            a.record(1_000_000, false, now, 1e9);
            // b answers 10× faster, but with errors
            b.record(100_000, true, now, 1e9);
        }
        b.record(100_000, false, now, 1e9);
        assert!(b.cost() > a.cost(), "{} vs {}", b.cost(), a.cost());
    }
}
