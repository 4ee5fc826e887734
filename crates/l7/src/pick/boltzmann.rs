//! `boltzmann`: the steering idea boltz grew from, applied inside a pool.
//! Each eligible backend has an energy, its load against its capacity
//! (`in_flight / capacity`) plus, when it answers clearly slower than the
//! pool's fastest, a bounded latency term, and a failure term; it is chosen with
//! probability `P_b ∝ w_b · exp(−E_b / T)`. The temperature rises with the
//! pool's utilisation `U = Σ in_flight / Σ capacity` from `t_min` (an idle
//! pool is greedy: the lowest energy wins nearly always) to `t_max` (a hot
//! pool spreads towards the weights, as weighted random does, so a burst of
//! concurrent picks does not herd onto the backend that looked best a
//! moment ago).
//!
//! The draw is the Gumbel-max trick of `boltz_steer`: each backend's race
//! key is `ln(−ln u) − logit` with `logit = ln w − E/T` and one random seed
//! per pick; the lowest key wins, which samples the distribution above
//! exactly without normalising it or computing an exponential. The maths
//! (`logit`, `gumbel`, `Temperature`, `fastmath::ln`) is `boltz_steer`'s;
//! this file reads the backends' atomics into energies.

use serde::{Deserialize, Serialize};

use boltz_steer::{fastmath, gumbel, logit, Scales, Temperature};

use super::random::next_u64;
use super::{Picker, View};
use crate::backend::Backend;

/// A backend's concurrency capacity when neither the backend, the pool's
/// `boltzmann.capacity` nor `admission.max_in_flight` gives one: requests
/// in flight at which it counts as fully loaded (energy 1).
pub const DEFAULT_CAPACITY: f64 = 100.0;

/// Energy of a backend failing every request (the failure term is this
/// times its recent failure rate): a backend that answers fast 5xx must
/// not look idle. Outlier ejection and the breaker take it out for good.
const FAILURE_ENERGY: f64 = 4.0;

/// The lowest temperature accepted: below it the choice is greedy anyway
/// and `1/T` stops being a meaningful number.
const MIN_T: f64 = 1e-3;

/// How many times the pool's best PeakEWMA a backend's must be before the
/// latency term counts it slower at all. Estimates of equal backends
/// differ by noise (PeakEWMA holds the last peak, and a busier backend
/// sees more peaks); at an idle pool's low T a few percent of energy
/// would herd traffic onto whichever looked fastest. P2C has the same
/// margin for the same reason (`P2C_MARGIN`).
const LATENCY_MARGIN: f64 = 1.5;

/// `boltzmann = { t_min = 0.05, t_max = 0.5, latency_weight = 1.0,
/// capacity = 100 }` in a pool; every key optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoltzmannConfig {
    /// T of an idle pool (U = 0).
    #[serde(default = "d_t_min")]
    pub t_min: f64,
    /// T of a pool at or above capacity (U ≥ 1).
    #[serde(default = "d_t_max")]
    pub t_max: f64,
    /// Weight of the latency term `max(0, 1 − 1.5 · best / latency)`
    /// (0 = load only).
    #[serde(default = "d_latency_weight")]
    pub latency_weight: f64,
    /// Every backend's capacity unless it sets its own (default:
    /// `admission.max_in_flight`, else [`DEFAULT_CAPACITY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
}

/// With energies in [0, ~1], 0.05 makes a backend 5% of its capacity
/// busier than another e times less likely: greedy.
fn d_t_min() -> f64 {
    0.05
}
/// At 0.5 a hot pool still weighs a 20% load difference (e^−0.4) but
/// follows the weights within that; at 2 it all but ignores load and
/// feeds a degraded backend (measured with `benches/compare/l7-lb.sh`,
/// see ARCHITECTURE.md).
fn d_t_max() -> f64 {
    0.5
}
fn d_latency_weight() -> f64 {
    1.0
}

impl Default for BoltzmannConfig {
    fn default() -> Self {
        BoltzmannConfig {
            t_min: d_t_min(),
            t_max: d_t_max(),
            latency_weight: d_latency_weight(),
            capacity: None,
        }
    }
}

impl BoltzmannConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        for (name, t) in [("t_min", self.t_min), ("t_max", self.t_max)] {
            if !(t.is_finite() && t >= MIN_T) {
                e.push(format!(
                    "{at}.{name}: must be a number of at least {MIN_T}, got {t}"
                ));
            }
        }
        if self.t_min > self.t_max {
            e.push(format!(
                "{at}: t_min ({}) must not exceed t_max ({})",
                self.t_min, self.t_max
            ));
        }
        if !(self.latency_weight.is_finite() && self.latency_weight >= 0.0) {
            e.push(format!(
                "{at}.latency_weight: must be 0 or more, got {}",
                self.latency_weight
            ));
        }
        if let Some(c) = self.capacity {
            e.extend(validate_capacity(c, &format!("{at}.capacity")));
        }
        e
    }

    /// T at pool utilisation `u` (linear from `t_min` at 0 to `t_max` at 1).
    pub fn temperature(&self, u: f64) -> f64 {
        // Inside a pool, utilisation is what the pick changes (unlike a
        // zone's total demand), so T follows it here.
        Temperature::Utilisation {
            min: self.t_min,
            max: self.t_max,
        }
        .at(0.0, u)
    }
}

/// A capacity must be a positive, finite number of requests.
pub fn validate_capacity(c: f64, at: &str) -> Vec<String> {
    if c.is_finite() && c > 0.0 {
        Vec::new()
    } else {
        vec![format!("{at}: must be a positive number, got {c}")]
    }
}

/// A backend's energy: `in_flight / capacity`, plus `latency_weight ·
/// max(0, 1 − LATENCY_MARGIN · best / latency)` (0 within 1.5 times the
/// fastest, towards `latency_weight` for one many times slower, 0 before
/// its first sample; `best` is 0 when no backend has one), plus
/// [`FAILURE_ENERGY`] × its failure rate.
pub(super) fn energy(b: &Backend, capacity: f64, best: f64, latency_weight: f64) -> f64 {
    let load = f64::from(b.in_flight()) / capacity;
    let lat = b.ewma.get();
    let slow = if latency_weight > 0.0 && best > 0.0 && lat > LATENCY_MARGIN * best {
        latency_weight * (1.0 - LATENCY_MARGIN * best / lat)
    } else {
        0.0
    };
    load + slow + FAILURE_ENERGY * b.fail_rate()
}

impl Picker {
    /// `boltzmann`: one pass for the pool's utilisation and best latency,
    /// one Gumbel race over the eligible backends.
    pub(super) fn boltzmann(&self, v: &View<'_>) -> Option<usize> {
        let cfg = &self.opts.boltzmann;
        let (mut load, mut capacity, mut best) = (0.0, 0.0, f64::INFINITY);
        for (i, &x) in v.w.iter().enumerate() {
            if x <= 0.0 {
                continue;
            }
            let b = &v.backends[i];
            load += f64::from(b.in_flight());
            capacity += self.capacity[i];
            let lat = b.ewma.get();
            if lat > 0.0 && lat < best {
                best = lat;
            }
        }
        let best = if best.is_finite() { best } else { 0.0 };
        let scales = Scales::new(1.0, cfg.temperature(load / capacity));
        let seed = next_u64();
        let mut won: Option<(usize, f64)> = None;
        for (i, &x) in v.w.iter().enumerate() {
            if x <= 0.0 {
                continue;
            }
            let e = energy(&v.backends[i], self.capacity[i], best, cfg.latency_weight);
            let key = gumbel(seed, i as u64) - logit(fastmath::ln(x), 0.0, e, &scales);
            if won.is_none_or(|(_, k)| key < k) {
                won = Some((i, key));
            }
        }
        won.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests;
