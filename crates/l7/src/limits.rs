//! Admission control and budgets of `boltz l7`, all lock-free on the
//! request path: a GCRA token bucket for request rates, a Finagle-style
//! retry budget that keeps retries to a fraction of the traffic, a
//! Gradient2 adaptive concurrency limiter that shrinks when latency rises
//! above its long-term floor, and a per-backend in-flight cap with a
//! bounded, time-limited wait queue.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use boltz_core::duration::serde_duration;

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

/// `retry = { retries = 2, budget = 0.2, min_per_second = 10 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts after the first, per request.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Retries may add at most this fraction to the request rate.
    #[serde(default = "default_budget")]
    pub budget: f64,
    /// Retries allowed per second regardless of traffic, so a quiet pool
    /// can still retry.
    #[serde(default = "default_min_per_second")]
    pub min_per_second: f64,
}

fn default_retries() -> u32 {
    2
}
fn default_budget() -> f64 {
    0.2
}
fn default_min_per_second() -> f64 {
    10.0
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            retries: default_retries(),
            budget: default_budget(),
            min_per_second: default_min_per_second(),
        }
    }
}

impl RetryConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if !(self.budget >= 0.0 && self.budget <= 1000.0) {
            e.push(format!(
                "{at}.budget: must be in [0, 1000], got {}",
                self.budget
            ));
        }
        if !(self.min_per_second >= 0.0 && self.min_per_second <= 1e6) {
            e.push(format!(
                "{at}.min_per_second: must be in [0, 1000000], got {}",
                self.min_per_second
            ));
        }
        e
    }
}

/// Seconds the budget remembers deposits and withdrawals.
const BUDGET_WINDOW_SECS: u64 = 10;
/// Fixed-point tokens: a retry costs this much.
const MILLI: i64 = 1000;
const VALUE_BITS: u32 = 40;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - VALUE_BITS)) - 1;
const VALUE_MAX: i64 = (1 << (VALUE_BITS - 1)) - 1;

/// Finagle's and Linkerd's retry budget: every request deposits `budget`
/// tokens, every retry withdraws one, on top of a reserve of
/// `min_per_second × 10 s`; both deposits and withdrawals expire after
/// about 10 s, so the reserve refills at `min_per_second`. The window is
/// ten one-second slots, each one AtomicU64 holding (second, milli-tokens)
/// so a slot's reset and its update are one CAS and nothing is lost.
/// Concurrent `try_retry`s that all see the last token may each take it:
/// the overdraft is at most one token per racing thread.
#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    reserve: i64,
    slots: [AtomicU64; BUDGET_WINDOW_SECS as usize],
}

impl RetryBudget {
    pub fn new(cfg: &RetryConfig) -> RetryBudget {
        let milli = |x: f64| (x.max(0.0) * MILLI as f64).round().min(VALUE_MAX as f64) as i64;
        RetryBudget {
            deposit: milli(cfg.budget),
            reserve: milli(cfg.min_per_second * BUDGET_WINDOW_SECS as f64),
            slots: Default::default(),
        }
    }

    /// Counts an original request (not a retry) in.
    pub fn on_request(&self, now_ns: u64) {
        if self.deposit > 0 {
            self.add(now_ns, self.deposit);
        }
    }

    /// Whether a retry may be sent now; if so, it is paid for.
    pub fn try_retry(&self, now_ns: u64) -> bool {
        if self.balance(now_ns) < MILLI {
            return false;
        }
        self.add(now_ns, -MILLI);
        true
    }

    /// Tokens available now (the reserve included).
    pub fn balance_tokens(&self, now_ns: u64) -> f64 {
        self.balance(now_ns) as f64 / MILLI as f64
    }

    fn balance(&self, now_ns: u64) -> i64 {
        let sec = now_ns / 1_000_000_000;
        let live: i64 = self
            .slots
            .iter()
            .map(|s| unpack(s.load(Relaxed)))
            .filter(|&(epoch, _)| (sec.wrapping_sub(epoch) & EPOCH_MASK) < BUDGET_WINDOW_SECS)
            .map(|(_, v)| v)
            .sum();
        self.reserve + live
    }

    fn add(&self, now_ns: u64, delta: i64) {
        let sec = now_ns / 1_000_000_000;
        let slot = &self.slots[(sec % BUDGET_WINDOW_SECS) as usize];
        let mut cur = slot.load(Relaxed);
        loop {
            let (epoch, value) = unpack(cur);
            let age = sec.wrapping_sub(epoch) & EPOCH_MASK;
            let next = if age == 0 || age > EPOCH_MASK / 2 {
                // This second's slot, or (a caller with a stale clock) a
                // newer one: add to it rather than wipe it.
                pack(epoch, value.saturating_add(delta))
            } else {
                pack(sec, delta)
            };
            match slot.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// The second (mod 2^24: 194 days, ample to tell 10 s apart) in the high
/// bits, a signed milli-token count in the low 40.
fn pack(epoch: u64, value: i64) -> u64 {
    let v = value.clamp(-VALUE_MAX, VALUE_MAX);
    ((epoch & EPOCH_MASK) << VALUE_BITS) | (v as u64 & VALUE_MASK)
}

fn unpack(x: u64) -> (u64, i64) {
    let shift = 64 - VALUE_BITS;
    (x >> VALUE_BITS, ((x << shift) as i64) >> shift)
}

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

/// `admission = { max_in_flight = 100, queue = 50, queue_timeout = "1s" }`
/// per backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Requests that may wait for a slot when all are taken.
    #[serde(default)]
    pub queue: u32,
    #[serde(default = "default_1s", with = "serde_duration")]
    pub queue_timeout: Duration,
}

fn default_1s() -> Duration {
    Duration::from_secs(1)
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_in_flight: None,
            queue: 0,
            queue_timeout: default_1s(),
        }
    }
}

impl AdmissionConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if self.max_in_flight == Some(0) {
            e.push(format!("{at}.max_in_flight: must be at least 1"));
        }
        if self.queue > 0 && self.max_in_flight.is_none() {
            e.push(format!(
                "{at}.queue: needs max_in_flight (without a cap nothing waits)"
            ));
        }
        if self.queue > 0 && self.queue_timeout.is_zero() {
            e.push(format!(
                "{at}.queue_timeout: must be more than 0 when queue is set"
            ));
        }
        e
    }
}

/// Refused: the backend is at `max_in_flight` and the queue was full or
/// the wait timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backend at its in-flight limit: queue full or wait timed out")]
pub struct Full;

/// One backend's in-flight cap: a semaphore of `max_in_flight` permits and
/// a counted queue of waiters. `set` resizes it in place: permits held
/// stay valid; a shrink below the number held retires permits as they come
/// back.
#[derive(Debug)]
pub struct Admission {
    sem: Arc<Semaphore>,
    limited: AtomicBool,
    queue: AtomicU32,
    timeout_ns: AtomicU64,
    waiters: AtomicU32,
    /// Permits still to retire after a shrink.
    debt: AtomicU32,
    /// Permits in circulation once the debt is paid; written only by `set`
    /// (control plane), whose calls it serialises.
    capacity: Mutex<u32>,
    /// Wakes waiters when `set` lifts the cap.
    changed: Notify,
}

impl Admission {
    pub fn new(cfg: &AdmissionConfig) -> Admission {
        let a = Admission {
            sem: Arc::new(Semaphore::new(0)),
            limited: AtomicBool::new(false),
            queue: AtomicU32::new(0),
            timeout_ns: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            debt: AtomicU32::new(0),
            capacity: Mutex::new(0),
            changed: Notify::new(),
        };
        a.set(cfg);
        a
    }

    /// Applies a new configuration; requests in flight keep their permits.
    pub fn set(&self, cfg: &AdmissionConfig) {
        let mut cap = self.capacity.lock().unwrap_or_else(|e| e.into_inner());
        self.queue.store(cfg.queue, Relaxed);
        self.timeout_ns.store(
            u64::try_from(cfg.queue_timeout.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        let Some(new) = cfg.max_in_flight else {
            // The semaphore keeps its size for a later cap; permits still
            // held come back to it.
            self.limited.store(false, Relaxed);
            self.changed.notify_waiters();
            return;
        };
        if new > *cap {
            let mut grow = new - *cap;
            // First cancel retirements still owed, then add the rest.
            let owed = self
                .debt
                .fetch_update(Relaxed, Relaxed, |d| Some(d - d.min(grow)))
                .unwrap_or(0);
            grow -= owed.min(grow);
            self.sem.add_permits(grow as usize);
        } else if new < *cap {
            let shrink = *cap - new;
            let gone = self.sem.forget_permits(shrink as usize) as u32;
            self.debt.fetch_add(shrink - gone, Relaxed);
        }
        *cap = new;
        self.limited.store(true, Relaxed);
    }

    /// Admits one request: `Ok(None)` without a cap, `Ok(Some(permit))`
    /// (held until the response is done), or `Err(Full)` when the cap is
    /// reached and the queue is full or the wait exceeds `queue_timeout`.
    /// Dropping the future leaves the queue.
    pub async fn enter(&self) -> Result<Option<OwnedSemaphorePermit>, Full> {
        if !self.limited.load(Relaxed) {
            return Ok(None);
        }
        self.settle();
        while let Ok(p) = self.sem.clone().try_acquire_owned() {
            if let Some(p) = self.keep(p) {
                return Ok(Some(p));
            }
        }
        let queue = self.queue.load(Relaxed);
        if self
            .waiters
            .fetch_update(Relaxed, Relaxed, |w| (w < queue).then_some(w + 1))
            .is_err()
        {
            return Err(Full);
        }
        let _waiting = Waiting(&self.waiters);
        let now = tokio::time::Instant::now();
        let wait = Duration::from_nanos(self.timeout_ns.load(Relaxed));
        // A timeout of centuries (u64::MAX ns) must not overflow Instant.
        let deadline = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        tokio::time::timeout_at(deadline, self.wait())
            .await
            .unwrap_or(Err(Full))
    }

    async fn wait(&self) -> Result<Option<OwnedSemaphorePermit>, Full> {
        loop {
            // Registered before the check so a `set` in between is seen.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.limited.load(Relaxed) {
                return Ok(None);
            }
            tokio::select! {
                p = self.sem.clone().acquire_owned() => {
                    // Never closed; a closed semaphore would admit nobody.
                    let p = p.map_err(|_| Full)?;
                    if let Some(p) = self.keep(p) {
                        return Ok(Some(p));
                    }
                }
                () = &mut changed => {}
            }
        }
    }

    /// Retires `p` if a shrink still owes a permit, else hands it back.
    fn keep(&self, p: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        if self
            .debt
            .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
            .is_ok()
        {
            p.forget();
            None
        } else {
            Some(p)
        }
    }

    /// Retires permits owed by a shrink that have come back meanwhile, in
    /// one go rather than one per request.
    fn settle(&self) {
        let owed = self.debt.swap(0, Relaxed);
        if owed > 0 {
            let gone = self.sem.forget_permits(owed as usize) as u32;
            if gone < owed {
                self.debt.fetch_add(owed - gone, Relaxed);
            }
        }
    }

    /// The cap (`None` when unlimited); for status pages, it takes the
    /// control-plane lock.
    pub fn max_in_flight(&self) -> Option<u32> {
        self.limited
            .load(Relaxed)
            .then(|| *self.capacity.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> u32 {
        self.waiters.load(Relaxed)
    }
}

/// Counts a waiter out however its wait ends (permit, timeout, drop).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn bucket_admits_the_burst_then_the_rate() {
        let b = TokenBucket::new(&RateLimitConfig {
            rps: 10.0,
            burst: Some(3.0),
        });
        let t = 50 * SEC;
        for _ in 0..3 {
            assert_eq!(b.try_take(t), Ok(()));
        }
        let wait = b.try_take(t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(b.try_take(t + 99_999_999), Err(Duration::from_nanos(1)));
        assert_eq!(b.try_take(t + 100_000_000), Ok(()));
        assert!(b.try_take(t + 100_000_000).is_err());
        // A long pause refills only up to the burst.
        let later = t + 3600 * SEC;
        assert_eq!((0..10).filter(|_| b.try_take(later).is_ok()).count(), 3);
        // Sustained, exactly rps per second.
        let mut n = 0;
        for ms in 1..=10_000u64 {
            n += usize::from(b.try_take(later + ms * 1_000_000).is_ok());
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn burst_defaults_to_one_second_and_retry_after_rounds_up() {
        let c: RateLimitConfig = toml::from_str("rps = 5").unwrap();
        assert_eq!(c.burst(), 5.0);
        let slow: RateLimitConfig = toml::from_str("rps = 0.5").unwrap();
        assert_eq!(slow.burst(), 1.0);
        let b = TokenBucket::new(&slow);
        assert!(b.try_take(SEC).is_ok());
        assert_eq!(b.try_take(SEC), Err(Duration::from_secs(2)));
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert!(toml::from_str::<RateLimitConfig>("rps = 5\nburts = 1").is_err());
        let e = RateLimitConfig {
            rps: 0.0,
            burst: Some(0.5),
        }
        .validate("pools.web.rate_limit");
        assert_eq!(e.len(), 2);
        assert!(e[0].starts_with("pools.web.rate_limit.rps: "), "{e:?}");
        assert!(e[1].starts_with("pools.web.rate_limit.burst: "), "{e:?}");
        assert!(c.validate("x").is_empty());
    }

    #[test]
    fn concurrent_takers_never_over_admit() {
        let rps = 2000.0;
        let burst = 50.0;
        let b = TokenBucket::new(&RateLimitConfig {
            rps,
            burst: Some(burst),
        });
        let start = boltz_core::clock::precise_ns();
        let (admitted, last) = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut ok = 0u64;
                        let mut last = 0;
                        for _ in 0..20_000 {
                            let now = boltz_core::clock::precise_ns();
                            last = now;
                            ok += u64::from(b.try_take(now).is_ok());
                        }
                        (ok, last)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .fold((0, 0), |(a, l), (o, t)| (a + o, l.max(t)))
        });
        let elapsed = (last - start) as f64 / 1e9;
        let bound = rps * elapsed + burst;
        assert!(
            admitted as f64 <= bound + 1.0,
            "{admitted} admitted, bound {bound}"
        );
        assert!(
            admitted >= burst as u64,
            "the burst is always there: {admitted}"
        );
    }

    #[test]
    fn retry_budget_has_a_reserve_and_earns_from_requests() {
        let cfg = RetryConfig::default();
        let b = RetryBudget::new(&cfg);
        let t = 1000 * SEC;
        // Quiet pool: the reserve, 10/s × 10 s.
        assert_eq!((0..200).filter(|_| b.try_retry(t)).count(), 100);
        assert!(!b.try_retry(t + SEC));
        // 500 requests earn 100 retries at 20%.
        for _ in 0..500 {
            b.on_request(t + 2 * SEC);
        }
        assert_eq!((0..200).filter(|_| b.try_retry(t + 2 * SEC)).count(), 100);
        // Withdrawals expire with the window: the reserve is back.
        assert_eq!(b.balance_tokens(t + 9 * SEC), 0.0);
        assert_eq!(
            b.balance_tokens(t + 10 * SEC),
            100.0,
            "t's withdrawals expired"
        );
        assert_eq!(b.balance_tokens(t + 12 * SEC), 100.0);
        // Deposits expire too.
        for _ in 0..50 {
            b.on_request(t + 13 * SEC);
        }
        assert_eq!(b.balance_tokens(t + 13 * SEC), 110.0);
        assert_eq!(b.balance_tokens(t + 23 * SEC), 100.0);
    }

    #[test]
    fn retry_budget_without_reserve_follows_the_ratio() {
        let b = RetryBudget::new(&RetryConfig {
            retries: 3,
            budget: 0.1,
            min_per_second: 0.0,
        });
        let mut retries = 0;
        let mut t = 77 * SEC;
        for i in 0..10_000u64 {
            t += 1_000_000;
            b.on_request(t);
            // Every request would like to retry.
            retries += u64::from(b.try_retry(t));
            assert!(
                retries * 10 <= i + 1,
                "{retries} retries after {} requests",
                i + 1
            );
        }
        assert!(retries >= 990, "{retries}");
        // A stale clock does not wipe a newer second's tokens.
        let before = b.balance_tokens(t);
        b.on_request(t - 10 * SEC);
        assert!(b.balance_tokens(t) > before);
    }

    #[test]
    fn budget_slot_packing_round_trips() {
        for (e, v) in [
            (0, 0),
            (5, -1000),
            (EPOCH_MASK, VALUE_MAX),
            (123, -VALUE_MAX),
        ] {
            assert_eq!(unpack(pack(e, v)), (e, v));
        }
        assert_eq!(unpack(pack(1, i64::MAX)), (1, VALUE_MAX));
        let c = RetryConfig {
            budget: -1.0,
            min_per_second: f64::NAN,
            ..RetryConfig::default()
        };
        let e = c.validate("pools.a.retry");
        assert!(
            e[0].starts_with("pools.a.retry.budget: ")
                && e[1].starts_with("pools.a.retry.min_per_second: "),
            "{e:?}"
        );
        let d: RetryConfig = toml::from_str("").unwrap();
        assert_eq!(d, RetryConfig::default());
        assert!(toml::from_str::<RetryConfig>("retires = 1").is_err());
    }

    fn limiter() -> ConcurrencyLimiter {
        ConcurrencyLimiter::new(&ConcurrencyConfig::default())
    }

    /// Fills the limit with requests that all take `rtt_ms`.
    fn round(l: &ConcurrencyLimiter, rtt_ms: u64) {
        let permits: Vec<_> = std::iter::from_fn(|| l.try_acquire()).collect();
        assert_eq!(permits.len() as u32, l.limit());
        for p in permits {
            p.done(rtt_ms * 1_000_000, false);
        }
    }

    #[test]
    fn limiter_admits_up_to_its_limit() {
        let l = limiter();
        assert_eq!(l.limit(), 20);
        let held: Vec<_> = std::iter::from_fn(|| l.try_acquire()).collect();
        assert_eq!(held.len(), 20);
        assert_eq!(l.in_flight(), 20);
        drop(held);
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.limit(), 20, "dropped permits feed nothing");
    }

    #[test]
    fn limiter_shrinks_when_latency_rises_and_recovers() {
        let l = limiter();
        for _ in 0..30 {
            round(&l, 10);
        }
        let grown = l.limit();
        assert!(
            grown > 40,
            "steady latency under full load grows the limit: {grown}"
        );
        for _ in 0..20 {
            round(&l, 60);
        }
        let shrunk = l.limit();
        assert!(shrunk < grown / 2, "{grown} → {shrunk}");
        for _ in 0..40 {
            round(&l, 10);
        }
        assert!(l.limit() > shrunk * 2, "{shrunk} → {}", l.limit());
        let l2 = ConcurrencyLimiter::new(&ConcurrencyConfig {
            max: 50,
            ..ConcurrencyConfig::default()
        });
        for _ in 0..50 {
            round(&l2, 10);
        }
        assert_eq!(l2.limit(), 50, "clamped to max");
        for _ in 0..100 {
            round(&l2, 1000);
        }
        assert_eq!(l2.limit(), 5, "clamped to min");
    }

    #[test]
    fn limiter_ignores_an_idle_application_and_backs_off_on_drops() {
        let l = limiter();
        for _ in 0..200 {
            let p = l.try_acquire().unwrap();
            p.done(1_000_000, false);
        }
        assert_eq!(l.limit(), 20, "one in flight says nothing about 20");
        l.try_acquire().unwrap().done(1_000_000, true);
        assert_eq!(l.limit(), 18, "a drop backs off at once");
        for _ in 0..5 {
            l.try_acquire().unwrap().done(1_000_000, true);
        }
        assert_eq!(l.limit(), 18, "once per window");
        for _ in 0..300 {
            l.try_acquire().unwrap().done(1_000_000, true);
        }
        assert_eq!(l.limit(), 5, "clamped to min");
    }

    #[test]
    fn limiter_never_over_admits_across_threads() {
        let l = ConcurrencyLimiter::new(&ConcurrencyConfig {
            initial: 7,
            ..ConcurrencyConfig::default()
        });
        let peak = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(p) = l.try_acquire() {
                            peak.fetch_max(l.in_flight(), Relaxed);
                            drop(p);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Relaxed) <= 7 && peak.load(Relaxed) >= 1);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn concurrency_config_validates() {
        let d: ConcurrencyConfig = toml::from_str("").unwrap();
        assert_eq!(d, ConcurrencyConfig::default());
        assert!(d.validate("c").is_empty());
        let bad = ConcurrencyConfig {
            initial: 2,
            min: 0,
            max: 1,
            smoothing: 0.0,
            tolerance: 0.5,
        };
        let e = bad.validate("pools.p.concurrency");
        let fields = ["min", "initial", "smoothing", "tolerance"];
        assert_eq!(e.len(), fields.len(), "{e:?}");
        for (m, f) in e.iter().zip(fields) {
            assert!(
                m.starts_with(&format!("pools.p.concurrency.{f}: ")),
                "{e:?}"
            );
        }
        let inverted = ConcurrencyConfig {
            min: 10,
            max: 5,
            initial: 7,
            ..ConcurrencyConfig::default()
        };
        let e = inverted.validate("c");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("c.max: ") && e[1].starts_with("c.initial: "));
        // The limiter itself tolerates what validation refuses.
        let l = ConcurrencyLimiter::new(&inverted);
        assert_eq!(l.limit(), 10);
        assert!(toml::from_str::<ConcurrencyConfig>("limit = 3").is_err());
    }

    fn cfg(max: Option<u32>, queue: u32, timeout_ms: u64) -> AdmissionConfig {
        AdmissionConfig {
            max_in_flight: max,
            queue,
            queue_timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn admission_without_a_cap_admits_everyone() {
        let a = Admission::new(&AdmissionConfig::default());
        assert_eq!(a.max_in_flight(), None);
        for _ in 0..100 {
            assert!(a.enter().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn admission_caps_and_refuses_without_a_queue() {
        let a = Admission::new(&cfg(Some(2), 0, 1000));
        let p1 = a.enter().await.unwrap().unwrap();
        let _p2 = a.enter().await.unwrap().unwrap();
        assert_eq!(a.enter().await.unwrap_err(), Full);
        drop(p1);
        assert!(a.enter().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn admission_queue_waits_for_a_permit_and_is_bounded() {
        let a = Arc::new(Admission::new(&cfg(Some(1), 1, 60_000)));
        let held = a.enter().await.unwrap().unwrap();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.enter().await.map(|p| p.is_some()) }
        });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(a.enter().await.unwrap_err(), Full, "queue of one is full");
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(true));
        assert_eq!(a.waiting(), 0);
    }

    #[tokio::test]
    async fn admission_wait_times_out_and_leaves_the_queue() {
        let a = Admission::new(&cfg(Some(1), 5, 20));
        let _held = a.enter().await.unwrap().unwrap();
        assert_eq!(a.enter().await.unwrap_err(), Full);
        assert_eq!(a.waiting(), 0);
        // A caller that gives up first also leaves the queue.
        let a = Admission::new(&cfg(Some(1), 5, 60_000));
        let _held = a.enter().await.unwrap().unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(10), a.enter())
            .await
            .is_err());
        assert_eq!(a.waiting(), 0);
    }

    async fn fill(a: &Admission) -> Vec<OwnedSemaphorePermit> {
        let mut v = Vec::new();
        while let Ok(Some(p)) = a.enter().await {
            v.push(p);
        }
        v
    }

    #[tokio::test]
    async fn admission_resizes_in_place() {
        let a = Admission::new(&cfg(Some(3), 0, 1000));
        let mut held = fill(&a).await;
        assert_eq!(held.len(), 3);
        a.set(&cfg(Some(1), 0, 1000));
        assert_eq!(a.max_in_flight(), Some(1));
        // The three stay valid; nothing new until only one is held.
        held.pop();
        assert!(a.enter().await.is_err());
        held.pop();
        assert!(a.enter().await.is_err());
        held.pop();
        assert_eq!(fill(&a).await.len(), 1);
        a.set(&cfg(Some(4), 0, 1000));
        assert_eq!(fill(&a).await.len(), 4);

        // Shrink then grow while permits are out: the debt is cancelled.
        let held = fill(&a).await;
        assert_eq!(held.len(), 4);
        a.set(&cfg(Some(1), 0, 1000));
        a.set(&cfg(Some(2), 0, 1000));
        drop(held);
        assert_eq!(fill(&a).await.len(), 2);
        // Lifted and put back: the same size.
        a.set(&cfg(None, 0, 1000));
        assert!(a.enter().await.unwrap().is_none());
        a.set(&cfg(Some(2), 0, 1000));
        assert_eq!(fill(&a).await.len(), 2);
    }

    #[tokio::test]
    async fn lifting_the_cap_releases_waiters() {
        let a = Arc::new(Admission::new(&cfg(Some(1), 3, 60_000)));
        let _held = a.enter().await.unwrap().unwrap();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.enter().await.map(|p| p.is_some()) }
        });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        a.set(&cfg(None, 0, 1000));
        assert_eq!(waiter.await.unwrap(), Ok(false));
    }

    #[test]
    fn admission_config_parses_and_validates() {
        let c: AdmissionConfig =
            toml::from_str("max_in_flight = 10\nqueue = 5\nqueue_timeout = \"250ms\"").unwrap();
        assert_eq!(c, cfg(Some(10), 5, 250));
        let d: AdmissionConfig = toml::from_str("").unwrap();
        assert_eq!(d, AdmissionConfig::default());
        assert_eq!(d.queue_timeout, Duration::from_secs(1));
        assert!(toml::from_str::<AdmissionConfig>("queue_timeout = 5").is_err());
        assert!(toml::from_str::<AdmissionConfig>("max = 5").is_err());
        let e = cfg(Some(0), 0, 1).validate("pools.p.backends[0].admission");
        assert_eq!(
            e,
            ["pools.p.backends[0].admission.max_in_flight: must be at least 1"]
        );
        let e = cfg(None, 3, 0).validate("a");
        assert!(
            e[0].starts_with("a.queue: ") && e[1].starts_with("a.queue_timeout: "),
            "{e:?}"
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"max_in_flight":10,"queue":5,"queue_timeout":"250ms"}"#
        );
    }
}
