//! A per-backend circuit breaker: closed → open when the failure rate over
//! a window passes a threshold (with a minimum number of requests) → after
//! `open_for`, half-open: a few trial requests → closed if they all
//! succeed, open again at the first failure. Atomics only, so every worker
//! thread consults it on the request path without a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

use boltz_core::duration::serde_duration;

/// `breaker = { failure_rate = 0.5, min_requests = 20, window = "10s",
/// open_for = "10s", half_open_requests = 3 }` in a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    #[serde(default = "default_rate")]
    pub failure_rate: f64,
    #[serde(default = "default_min")]
    pub min_requests: u32,
    #[serde(default = "default_10s", with = "serde_duration")]
    pub window: Duration,
    #[serde(default = "default_10s", with = "serde_duration")]
    pub open_for: Duration,
    #[serde(default = "default_trials")]
    pub half_open_requests: u32,
}

fn default_rate() -> f64 {
    0.5
}
fn default_min() -> u32 {
    20
}
fn default_10s() -> Duration {
    Duration::from_secs(10)
}
fn default_trials() -> u32 {
    3
}

impl BreakerConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            e.push(format!(
                "{at}.failure_rate: must be in (0, 1], got {}",
                self.failure_rate
            ));
        }
        if self.window.is_zero() {
            e.push(format!("{at}.window: must be more than 0"));
        }
        if self.half_open_requests == 0 {
            e.push(format!("{at}.half_open_requests: must be at least 1"));
        }
        e
    }
}

/// What the breaker currently does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Debug, Default)]
pub struct Breaker {
    cfg: ArcSwapOption<BreakerConfig>,
    state: AtomicU8,
    /// precise_ns() when the current window (closed) began, or when it opened.
    since: AtomicU64,
    requests: AtomicU32,
    failures: AtomicU32,
    /// Half-open: trials started and trials that succeeded.
    trials: AtomicU32,
    passed: AtomicU32,
    pub opened: AtomicU64,
}

impl Breaker {
    /// Sets (or with `None` removes) the configuration; state is kept.
    pub fn configure(&self, cfg: Option<BreakerConfig>) {
        if cfg.is_none() {
            self.state.store(CLOSED, Relaxed);
        }
        self.cfg.store(cfg.map(std::sync::Arc::new));
    }

    pub fn state(&self, now: u64) -> BreakerState {
        match self.state.load(Relaxed) {
            OPEN => match self.cfg.load().as_ref() {
                Some(c) if now >= self.since.load(Relaxed) + c.open_for.as_nanos() as u64 => {
                    BreakerState::HalfOpen
                }
                _ => BreakerState::Open,
            },
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// Whether a new request may be sent: always when closed; never while
    /// open; when half-open, while trial slots remain.
    pub fn admits_new(&self, now: u64) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                let max = self.cfg.load().as_ref().map_or(1, |c| c.half_open_requests);
                self.trials.load(Relaxed) < max
            }
        }
    }

    /// Claims the right to send one request; false when the breaker
    /// refuses (a half-open breaker's trial slots are all taken).
    pub fn on_start(&self, now: u64) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.state.load(Relaxed) == OPEN
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Relaxed, Relaxed)
                        .is_ok()
                {
                    self.trials.store(0, Relaxed);
                    self.passed.store(0, Relaxed);
                }
                let max = self.cfg.load().as_ref().map_or(1, |c| c.half_open_requests);
                self.trials
                    .fetch_update(Relaxed, Relaxed, |t| (t < max).then_some(t + 1))
                    .is_ok()
            }
        }
    }

    /// Records the outcome of a request that `on_start` admitted.
    pub fn on_result(&self, now: u64, failed: bool) {
        let guard = self.cfg.load();
        let Some(c) = guard.as_ref() else {
            return;
        };
        match self.state.load(Relaxed) {
            HALF_OPEN => {
                if failed {
                    self.trip(now);
                } else if self.passed.fetch_add(1, Relaxed) + 1 >= c.half_open_requests {
                    self.reset_window(now);
                    self.state.store(CLOSED, Relaxed);
                }
            }
            CLOSED => {
                let start = self.since.load(Relaxed);
                if now.saturating_sub(start) > c.window.as_nanos() as u64
                    && self
                        .since
                        .compare_exchange(start, now, Relaxed, Relaxed)
                        .is_ok()
                {
                    self.requests.store(0, Relaxed);
                    self.failures.store(0, Relaxed);
                }
                let n = self.requests.fetch_add(1, Relaxed) + 1;
                let f = self.failures.fetch_add(u32::from(failed), Relaxed) + u32::from(failed);
                // On every outcome, not only failures: the rate also passes
                // the threshold when min_requests is reached by a success.
                if n >= c.min_requests && f > 0 && f64::from(f) >= c.failure_rate * f64::from(n) {
                    self.trip(now);
                }
            }
            _ => {}
        }
    }

    fn trip(&self, now: u64) {
        self.since.store(now, Relaxed);
        self.state.store(OPEN, Relaxed);
        self.opened.fetch_add(1, Relaxed);
    }

    fn reset_window(&self, now: u64) {
        self.since.store(now, Relaxed);
        self.requests.store(0, Relaxed);
        self.failures.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        let b = Breaker::default();
        b.configure(Some(BreakerConfig {
            failure_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(1),
            half_open_requests: 2,
        }));
        b
    }

    #[test]
    fn opens_on_failure_rate_then_half_opens_and_closes() {
        let b = breaker();
        let mut now = 1;
        for i in 0..10 {
            assert!(b.on_start(now));
            b.on_result(now, i % 2 == 0);
            now += 1000;
        }
        assert_eq!(b.state(now), BreakerState::Open, "5 of 10 failed");
        assert!(!b.admits_new(now));
        now += 1_000_000_000;
        assert_eq!(b.state(now), BreakerState::HalfOpen);
        assert!(b.on_start(now) && b.on_start(now));
        assert!(!b.on_start(now), "only two trials");
        b.on_result(now, false);
        b.on_result(now, false);
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[test]
    fn a_failed_trial_opens_again() {
        let b = breaker();
        for _ in 0..10 {
            b.on_result(5, true);
        }
        assert_eq!(b.state(6), BreakerState::Open);
        let later = 5 + 1_000_000_001;
        assert!(b.on_start(later));
        b.on_result(later, true);
        assert_eq!(b.state(later + 1), BreakerState::Open);
        assert_eq!(b.opened.load(Relaxed), 2);
    }

    #[test]
    fn no_config_means_always_closed() {
        let b = Breaker::default();
        for _ in 0..100 {
            b.on_result(1, true);
        }
        assert!(b.admits_new(2) && b.on_start(2));
        assert!(BreakerConfig {
            failure_rate: 2.0,
            ..breaker().cfg.load().as_deref().unwrap().clone()
        }
        .validate("pools.web.breaker")[0]
            .starts_with("pools.web.breaker.failure_rate"));
    }
}
