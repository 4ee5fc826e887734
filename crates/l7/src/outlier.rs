//! Passive outlier detection of `boltz l7`, after Envoy's: the proxy
//! reports every response's outcome, and a backend that answers with too
//! many consecutive 5xx (or refuses too many connections in a row) is
//! ejected from balancing for a time that grows with each ejection, as long
//! as that leaves enough of the pool in service. State lives in the
//! backend's atomics, so any worker thread can record without a lock.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::Backend;
use boltz_core::duration::serde_duration;

/// `outlier = { consecutive_5xx = 5, consecutive_connect_failures = 3,
/// base_ejection = "30s", max_ejection = "300s", max_ejection_percent = 50 }`
/// in a pool. A threshold of 0 turns that detector off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// 5xx answers and resets in a row that eject.
    #[serde(default = "default_5xx")]
    pub consecutive_5xx: u32,
    /// Failed connection attempts in a row that eject.
    #[serde(default = "default_connect")]
    pub consecutive_connect_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long.
    #[serde(default = "default_base", with = "serde_duration")]
    pub base_ejection: Duration,
    #[serde(default = "default_max", with = "serde_duration")]
    pub max_ejection: Duration,
    /// At most this share of the pool is ejected at once (but one backend
    /// of a pool of two or more always may be).
    #[serde(default = "default_percent")]
    pub max_ejection_percent: f64,
}

fn default_5xx() -> u32 {
    5
}
fn default_connect() -> u32 {
    3
}
fn default_base() -> Duration {
    Duration::from_secs(30)
}
fn default_max() -> Duration {
    Duration::from_secs(300)
}
fn default_percent() -> f64 {
    50.0
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: default_5xx(),
            consecutive_connect_failures: default_connect(),
            base_ejection: default_base(),
            max_ejection: default_max(),
            max_ejection_percent: default_percent(),
        }
    }
}

impl OutlierConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if self.base_ejection.is_zero() {
            e.push(format!("{at}.base_ejection: must be more than 0"));
        }
        if self.max_ejection < self.base_ejection {
            e.push(format!(
                "{at}.max_ejection: must be at least base_ejection ({})",
                boltz_core::duration::format_duration(self.base_ejection)
            ));
        }
        if !(self.max_ejection_percent >= 0.0 && self.max_ejection_percent <= 100.0) {
            e.push(format!(
                "{at}.max_ejection_percent: must be in [0, 100], got {}",
                self.max_ejection_percent
            ));
        }
        e
    }

    /// The length of the `n`-th ejection (n ≥ 1): n × base, capped at
    /// max_ejection (or base, if that is larger).
    pub fn ejection_time(&self, n: u32) -> Duration {
        self.base_ejection
            .saturating_mul(n.max(1))
            .min(self.max_ejection.max(self.base_ejection))
    }

    /// How long a backend must stay in service after its last ejection
    /// before its ejection history is forgotten.
    pub fn forgive_after(&self) -> Duration {
        self.base_ejection.saturating_mul(10)
    }
}

/// How one request to a backend ended, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A 5xx answer.
    ServerError,
    /// The connection could not be made.
    ConnectFailure,
    /// The connection was reset, or timed out, after the request was sent.
    Reset,
}

/// Records one outcome of `b`, a member of `pool`, and ejects `b` when a
/// detector's threshold is reached; returns the ejection's length if it
/// ejected. A success resets both counters; a 5xx or reset proves the
/// connection worked, so it resets the connect-failure count (and counts
/// as a 5xx); a connect failure leaves the 5xx count alone.
pub fn record(
    cfg: &OutlierConfig,
    pool: &[Arc<Backend>],
    b: &Backend,
    outcome: Outcome,
    now: u64,
) -> Option<Duration> {
    let (counter, threshold) = match outcome {
        Outcome::Success => {
            // Loads first: a store would dirty the cache line on every
            // success of a healthy backend.
            if b.consecutive_5xx.load(Relaxed) != 0 {
                b.consecutive_5xx.store(0, Relaxed);
            }
            if b.consecutive_connect_failures.load(Relaxed) != 0 {
                b.consecutive_connect_failures.store(0, Relaxed);
            }
            return None;
        }
        Outcome::ServerError | Outcome::Reset => {
            if b.consecutive_connect_failures.load(Relaxed) != 0 {
                b.consecutive_connect_failures.store(0, Relaxed);
            }
            (&b.consecutive_5xx, cfg.consecutive_5xx)
        }
        Outcome::ConnectFailure => (
            &b.consecutive_connect_failures,
            cfg.consecutive_connect_failures,
        ),
    };
    if threshold == 0 {
        return None;
    }
    let n = counter.fetch_add(1, Relaxed).saturating_add(1);
    if n < threshold {
        return None;
    }
    eject(cfg, pool, b, counter, now)
}

/// Envoy's cap, with the "at least one" rule narrowed to pools of two or
/// more: `ejected` backends out of `total` are allowed when they are at
/// most max_ejection_percent of the pool, or when it is a single backend,
/// the percent is above 0 and others remain in service.
pub fn ejection_allowed(cfg: &OutlierConfig, ejected: usize, total: usize) -> bool {
    let pct = cfg.max_ejection_percent;
    if pct.is_nan() || pct <= 0.0 || ejected == 0 {
        return ejected == 0;
    }
    ejected as f64 * 100.0 <= pct * total as f64 || (ejected == 1 && total > 1)
}

fn ejected_in(pool: &[Arc<Backend>], now: u64, except: Option<&Backend>) -> usize {
    pool.iter()
        .filter(|p| except.is_none_or(|b| !std::ptr::eq(&***p, b)))
        .filter(|p| p.ejected_until.load(SeqCst) > now)
        .count()
}

fn eject(
    cfg: &OutlierConfig,
    pool: &[Arc<Backend>],
    b: &Backend,
    counter: &AtomicU32,
    now: u64,
) -> Option<Duration> {
    let until = b.ejected_until.load(SeqCst);
    if until > now {
        // Already out: answers to requests sent before the ejection must
        // not extend it or eject it again the moment it returns.
        counter.store(0, Relaxed);
        return None;
    }
    // Refused for room: the counter stays at the threshold, so the next
    // failure tries again (and succeeds once others have returned).
    if !ejection_allowed(cfg, ejected_in(pool, now, Some(b)) + 1, pool.len()) {
        return None;
    }
    let time = cfg.ejection_time(b.ejections.load(Relaxed).saturating_add(1));
    let out_until = now.saturating_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
    // One winner per backend: a concurrent recorder of the same backend
    // fails here.
    if b.ejected_until
        .compare_exchange(until, out_until, SeqCst, SeqCst)
        .is_err()
    {
        return None;
    }
    // Two backends ejected at once may both have seen room for one. Each
    // stores before it counts (SeqCst), so the later of the two sees the
    // other and steps back: the cap is never exceeded, at worst neither
    // stays out and the next failure tries again.
    if !ejection_allowed(cfg, ejected_in(pool, now, None), pool.len()) {
        let _ = b
            .ejected_until
            .compare_exchange(out_until, until, SeqCst, SeqCst);
        return None;
    }
    b.ejections.fetch_add(1, Relaxed);
    counter.store(0, Relaxed);
    Some(time)
}

/// Forgets `b`'s ejection history (its ejection count, which lengthens the
/// next ejection) once it has stayed in service for
/// [`OutlierConfig::forgive_after`] (10 × base_ejection) since its last
/// ejection ended. All at once rather than Envoy's one step per detection
/// interval: the result then does not depend on how often the proxy calls
/// this, and there is no per-backend stamp to keep. Returns whether it
/// forgave.
pub fn forgive(b: &Backend, cfg: &OutlierConfig, now: u64) -> bool {
    let until = b.ejected_until.load(SeqCst);
    let quiet = u64::try_from(cfg.forgive_after().as_nanos()).unwrap_or(u64::MAX);
    if until > now || now - until < quiet {
        return false;
    }
    let e = b.ejections.load(Relaxed);
    // A CAS, so an ejection counted meanwhile is not wiped.
    e > 0 && b.ejections.compare_exchange(e, 0, Relaxed, Relaxed).is_ok()
}

#[cfg(test)]
mod tests;
