//! The pool's adaptive concurrency limit: Netflix's Gradient2 over
//! windows of samples ([`ConcurrencyLimiter`]), admitting with one CAS and
//! learning from each request's round trip ([`ConcurrencyPermit::done`]).

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// `concurrency = { initial = 20, min = 5, max = 1000, smoothing = 0.2,
/// tolerance = 1.5 }`: the adaptive limit of requests in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    #[serde(default = "default_initial")]
    pub initial: u32,
    #[serde(default = "default_min_limit")]
    pub min: u32,
    #[serde(default = "default_max_limit")]
    pub max: u32,
    /// Weight of each new estimate in the limit (0, 1].
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// How far above the long-term RTT the short-term one may go before
    /// the limit shrinks (≥ 1).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_initial() -> u32 {
    20
}
fn default_min_limit() -> u32 {
    5
}
fn default_max_limit() -> u32 {
    1000
}
fn default_smoothing() -> f64 {
    0.2
}
fn default_tolerance() -> f64 {
    1.5
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            initial: default_initial(),
            min: default_min_limit(),
            max: default_max_limit(),
            smoothing: default_smoothing(),
            tolerance: default_tolerance(),
        }
    }
}

impl ConcurrencyConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if self.min == 0 {
            e.push(format!("{at}.min: must be at least 1"));
        }
        if self.max < self.min {
            e.push(format!(
                "{at}.max: must be at least min ({}), got {}",
                self.min, self.max
            ));
        }
        if self.initial < self.min || self.initial > self.max {
            e.push(format!(
                "{at}.initial: must be between min ({}) and max ({}), got {}",
                self.min, self.max, self.initial
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            e.push(format!(
                "{at}.smoothing: must be in (0, 1], got {}",
                self.smoothing
            ));
        }
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            e.push(format!(
                "{at}.tolerance: must be at least 1, got {}",
                self.tolerance
            ));
        }
        e
    }
}

/// Windows averaged plainly before the long-term RTT becomes an EWMA.
const WARMUP: u64 = 10;
/// EWMA lengths (in windows) of the long- and short-term RTT; Netflix's
/// Gradient2 uses 600 for the long one.
const LONG_WINDOW: f64 = 600.0;
const SHORT_WINDOW: f64 = 10.0;
/// Fewest samples in a window.
const MIN_WINDOW: u32 = 10;
/// A window with a dropped or failed request multiplies the limit by this
/// (the AIMD limiter's default back-off), once per window.
const DROP_BACKOFF: f64 = 0.9;

/// Netflix concurrency-limits' Gradient2 behind a sample window: the limit
/// follows `limit × clamp(tolerance × long / short, 0.5, 1) + √limit`,
/// smoothed, so it shrinks while recent latency (short EWMA) is well above
/// the long-term one and grows by about √limit per update while it is
/// not. When latency falls well below the long-term value, the long one
/// decays quickly so the limit recovers.
///
/// Samples are averaged over windows of max(10, limit) requests (about one
/// round trip at full load) and each window is one update, as Netflix's
/// `WindowedLimit` does with time windows: per-request updates would let a
/// busy pool's 600-sample "long term" last a fraction of a second. A
/// dropped request backs the limit off at once, but at most once per
/// window (as TCP reduces once per round trip), and a window with a drop
/// does not grow it. Admission is one CAS on the in-flight count; the
/// estimate is updated under `Mutex::try_lock` by whichever sample gets
/// the lock (the others are skipped, never waited for).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimiter {
    inner: Arc<LimiterInner>,
}

#[derive(Debug)]
struct LimiterInner {
    cfg: ConcurrencyConfig,
    limit: AtomicU32,
    in_flight: AtomicU32,
    estimate: Mutex<Estimate>,
}

#[derive(Debug)]
struct Estimate {
    limit: f64,
    /// ns
    long: f64,
    short: f64,
    windows: u64,
    window: Window,
}

/// The samples of the current window.
#[derive(Debug, Default)]
struct Window {
    /// Samples that close it.
    size: u32,
    samples: u32,
    ok: u32,
    rtt_sum: f64,
    max_in_flight: u32,
    backed_off: bool,
}

impl Window {
    fn new(limit: f64) -> Window {
        Window {
            size: (limit as u32).max(MIN_WINDOW),
            ..Window::default()
        }
    }
}

impl ConcurrencyLimiter {
    pub fn new(cfg: &ConcurrencyConfig) -> ConcurrencyLimiter {
        let min = cfg.min.max(1);
        let max = cfg.max.max(min);
        let cfg = ConcurrencyConfig {
            min,
            max,
            initial: cfg.initial.clamp(min, max),
            smoothing: if cfg.smoothing > 0.0 && cfg.smoothing <= 1.0 {
                cfg.smoothing
            } else {
                default_smoothing()
            },
            tolerance: if cfg.tolerance >= 1.0 && cfg.tolerance.is_finite() {
                cfg.tolerance
            } else {
                default_tolerance()
            },
        };
        let limit = f64::from(cfg.initial);
        ConcurrencyLimiter {
            inner: Arc::new(LimiterInner {
                limit: AtomicU32::new(cfg.initial),
                in_flight: AtomicU32::new(0),
                estimate: Mutex::new(Estimate {
                    limit,
                    long: 0.0,
                    short: 0.0,
                    windows: 0,
                    window: Window::new(limit),
                }),
                cfg,
            }),
        }
    }

    /// A slot for one request, or `None` when `limit()` are in flight.
    pub fn try_acquire(&self) -> Option<ConcurrencyPermit> {
        let limit = self.inner.limit.load(Relaxed);
        let before = self
            .inner
            .in_flight
            .fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()?;
        Some(ConcurrencyPermit {
            inner: self.inner.clone(),
            in_flight: before + 1,
        })
    }

    pub fn limit(&self) -> u32 {
        self.inner.limit.load(Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight.load(Relaxed)
    }
}

impl LimiterInner {
    fn sample(&self, rtt_ns: u64, in_flight: u32, dropped: bool) {
        let Ok(mut guard) = self.estimate.try_lock() else {
            return;
        };
        let e = &mut *guard;
        let (min, max) = (f64::from(self.cfg.min), f64::from(self.cfg.max));
        let w = &mut e.window;
        w.samples += 1;
        w.max_in_flight = w.max_in_flight.max(in_flight);
        if dropped {
            if !w.backed_off {
                w.backed_off = true;
                e.limit = (e.limit * DROP_BACKOFF).clamp(min, max);
                self.limit.store(e.limit as u32, Relaxed);
            }
        } else {
            // A failure's time (often a fast error) is not the latency.
            w.ok += 1;
            w.rtt_sum += rtt_ns.max(1) as f64;
        }
        if w.samples < w.size {
            return;
        }
        let w = std::mem::replace(&mut e.window, Window::new(e.limit));
        if w.ok == 0 {
            return;
        }
        let rtt = w.rtt_sum / f64::from(w.ok);
        e.windows += 1;
        if e.windows <= WARMUP {
            e.long += (rtt - e.long) / e.windows as f64;
        } else {
            e.long += (rtt - e.long) * 2.0 / (LONG_WINDOW + 1.0);
        }
        e.short = if e.windows == 1 {
            rtt
        } else {
            e.short + (rtt - e.short) * 2.0 / (SHORT_WINDOW + 1.0)
        };
        // Latency well below the long-term average: the old normal is
        // gone, forget it faster than the long window would.
        if e.long / e.short > 2.0 {
            e.long *= 0.95;
        }
        // Far below the limit the samples say nothing about it (the
        // application, not the backend, limits the load).
        if w.backed_off || f64::from(w.max_in_flight) < e.limit / 2.0 {
            return;
        }
        let gradient = (self.cfg.tolerance * e.long / e.short).clamp(0.5, 1.0);
        let target = e.limit * gradient + e.limit.sqrt();
        let s = self.cfg.smoothing;
        e.limit = (e.limit * (1.0 - s) + target * s).clamp(min, max);
        self.limit.store(e.limit as u32, Relaxed);
    }
}

/// One request counted against the limit until `done` or drop.
#[derive(Debug)]
#[must_use = "dropping the permit at once releases the slot"]
pub struct ConcurrencyPermit {
    inner: Arc<LimiterInner>,
    /// In flight when this one started, itself included.
    in_flight: u32,
}

impl ConcurrencyPermit {
    /// Releases the slot and feeds the limiter: the request's round-trip
    /// time, and whether it was dropped or failed (which shrinks the limit
    /// at once).
    pub fn done(self, rtt_ns: u64, dropped: bool) {
        self.inner.sample(rtt_ns, self.in_flight, dropped);
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests;
