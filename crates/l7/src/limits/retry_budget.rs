//! The pool's retry budget (Finagle's and Linkerd's): retries may add at
//! most a fraction of the traffic, plus a small reserve per second, over a
//! sliding ten-second window of packed atomic slots.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests;
