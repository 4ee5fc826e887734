//! The route rate limit: a GCRA token bucket ([`TokenBucket`]) per route
//! with `rate_limit`, refusing with a `Retry-After` of whole seconds
//! ([`retry_after_secs`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

const NS_PER_SEC: f64 = 1e9;

/// `rate_limit = { rps = 100, burst = 200 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub rps: f64,
    /// Requests admitted back to back after a quiet spell; defaults to
    /// max(rps, 1), one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<f64>,
}

/// Above this the bucket's nanosecond arithmetic loses its precision.
const MAX_RPS: f64 = 1e9;

impl RateLimitConfig {
    /// The burst in effect (the default applied).
    pub fn burst(&self) -> f64 {
        self.burst.unwrap_or(self.rps.max(1.0))
    }

    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if !(self.rps > 0.0 && self.rps <= MAX_RPS) {
            e.push(format!(
                "{at}.rps: must be in (0, {MAX_RPS}], got {}",
                self.rps
            ));
        }
        if let Some(b) = self.burst {
            if !(b >= 1.0 && b.is_finite()) {
                e.push(format!("{at}.burst: must be at least 1, got {b}"));
            }
        }
        e
    }
}

/// A token bucket in its GCRA form: one atomic "theoretical arrival time"
/// (TAT) that each admitted request pushes one interval further; a request
/// is refused while the TAT is more than `burst` intervals ahead of now.
/// The compare-and-swap makes concurrent callers serialise on that one
/// word, so they can never admit more than `rps × t + burst` together.
#[derive(Debug)]
pub struct TokenBucket {
    /// ns per token, rounded up so rounding never over-admits.
    interval: u64,
    /// How far (ns) the TAT may run ahead of now: burst × interval.
    tolerance: u64,
    tat: AtomicU64,
}

impl TokenBucket {
    /// A full bucket. An invalid rate (see `validate`) admits one request
    /// and then nothing, rather than everything.
    pub fn new(cfg: &RateLimitConfig) -> TokenBucket {
        let interval = if cfg.rps > 0.0 && cfg.rps.is_finite() {
            ((NS_PER_SEC / cfg.rps.min(MAX_RPS)).ceil() as u64).max(1)
        } else {
            u64::MAX / 2
        };
        let burst = if cfg.burst() >= 1.0 { cfg.burst() } else { 1.0 };
        let tolerance = (burst * interval as f64).min((u64::MAX / 4) as f64) as u64;
        TokenBucket {
            interval,
            tolerance: tolerance.max(interval),
            tat: AtomicU64::new(0),
        }
    }

    /// Takes a token at `now_ns`, or says how long until one is available.
    pub fn try_take(&self, now_ns: u64) -> Result<(), Duration> {
        let mut tat = self.tat.load(Relaxed);
        loop {
            let next = tat.max(now_ns).saturating_add(self.interval);
            let ahead = next - now_ns;
            if ahead > self.tolerance {
                return Err(Duration::from_nanos(ahead - self.tolerance));
            }
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests;
