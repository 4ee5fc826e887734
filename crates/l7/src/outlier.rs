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
mod tests {
    use super::*;
    use crate::backend::AdminState;

    const SEC: u64 = 1_000_000_000;

    fn pool(n: usize) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| {
                let addr = format!("127.0.0.1:{}", 20_000 + i).parse().unwrap();
                Arc::new(Backend::new(addr, 1.0, AdminState::Up))
            })
            .collect()
    }

    fn fail(
        cfg: &OutlierConfig,
        p: &[Arc<Backend>],
        i: usize,
        n: u32,
        now: u64,
    ) -> Option<Duration> {
        // Stops at the ejection: later failures would only be ignored.
        (0..n).find_map(|_| record(cfg, p, &p[i], Outcome::ServerError, now))
    }

    #[test]
    fn consecutive_5xx_eject_and_the_backend_returns() {
        let cfg = OutlierConfig::default();
        let p = pool(4);
        let t = 100 * SEC;
        assert_eq!(fail(&cfg, &p, 0, 4, t), None);
        assert!(!p[0].is_ejected(t));
        assert_eq!(
            record(&cfg, &p, &p[0], Outcome::Reset, t),
            Some(Duration::from_secs(30))
        );
        assert!(p[0].is_ejected(t) && p[0].is_ejected(t + 30 * SEC - 1));
        assert!(!p[0].is_ejected(t + 30 * SEC), "back after base_ejection");
        assert_eq!(p[0].ejections.load(Relaxed), 1);
        assert_eq!(p[0].consecutive_5xx.load(Relaxed), 0, "counter restarts");
        // Answers to requests sent before the ejection do not extend it.
        assert_eq!(fail(&cfg, &p, 0, 10, t + SEC), None);
        assert_eq!(p[0].ejected_until.load(Relaxed), t + 30 * SEC);
    }

    #[test]
    fn successes_in_between_prevent_ejection() {
        let cfg = OutlierConfig::default();
        let p = pool(4);
        let t = 5 * SEC;
        for _ in 0..20 {
            assert_eq!(fail(&cfg, &p, 1, 4, t), None);
            assert_eq!(record(&cfg, &p, &p[1], Outcome::Success, t), None);
        }
        assert!(!p[1].is_ejected(t));
        // Connect failures: 3 in a row eject, a 5xx in between breaks the
        // streak (the connection worked), a success too.
        let cf = |i: usize| record(&cfg, &p, &p[i], Outcome::ConnectFailure, t);
        assert_eq!((cf(2), cf(2)), (None, None));
        assert_eq!(record(&cfg, &p, &p[2], Outcome::ServerError, t), None);
        assert_eq!((cf(2), cf(2)), (None, None));
        assert_eq!(record(&cfg, &p, &p[2], Outcome::Success, t), None);
        assert_eq!((cf(2), cf(2)), (None, None));
        assert_eq!(cf(2), Some(Duration::from_secs(30)));
        // Connect failures do not reset the 5xx streak.
        assert_eq!(fail(&cfg, &p, 3, 4, t), None);
        assert_eq!(cf(3), None);
        assert_eq!(fail(&cfg, &p, 3, 1, t), Some(Duration::from_secs(30)));
    }

    #[test]
    fn ejections_grow_up_to_the_maximum() {
        let cfg = OutlierConfig::default();
        let p = pool(3);
        let mut t = SEC;
        let mut times = Vec::new();
        for _ in 0..12 {
            let d = fail(&cfg, &p, 0, 5, t).expect("ejected");
            times.push(d.as_secs());
            t += d.as_nanos() as u64;
            assert!(!p[0].is_ejected(t));
        }
        assert_eq!(
            times,
            [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]
        );
    }

    #[test]
    fn the_percent_cap_holds_and_one_is_always_allowed() {
        let cfg = OutlierConfig::default();
        let p = pool(4);
        let t = SEC;
        assert!(fail(&cfg, &p, 0, 5, t).is_some());
        assert!(fail(&cfg, &p, 1, 5, t).is_some());
        assert_eq!(fail(&cfg, &p, 2, 5, t), None, "50% of 4 already out");
        assert!(!p[2].is_ejected(t));
        // Once the others are back, the next failure ejects at once.
        let back = t + 30 * SEC;
        assert!(fail(&cfg, &p, 2, 1, back).is_some());

        // 10% of two is less than one backend, but one may always go.
        let tight = OutlierConfig {
            max_ejection_percent: 10.0,
            ..OutlierConfig::default()
        };
        let two = pool(2);
        assert!(fail(&tight, &two, 0, 5, t).is_some());
        assert_eq!(fail(&tight, &two, 1, 5, t), None);
        // A lone backend stays: ejecting it would empty the pool.
        let one = pool(1);
        assert_eq!(fail(&cfg, &one, 0, 5, t), None);
        let all = OutlierConfig {
            max_ejection_percent: 100.0,
            ..OutlierConfig::default()
        };
        assert!(fail(&all, &one, 0, 5, t).is_some());
        let off = OutlierConfig {
            max_ejection_percent: 0.0,
            ..OutlierConfig::default()
        };
        assert_eq!(fail(&off, &two, 1, 50, back), None);
        assert!(ejection_allowed(&cfg, 5, 10) && !ejection_allowed(&cfg, 6, 10));
        assert!(ejection_allowed(&off, 0, 10) && !ejection_allowed(&off, 1, 10));
    }

    #[test]
    fn racing_ejections_never_pass_the_cap() {
        let cfg = OutlierConfig {
            max_ejection_percent: 30.0,
            ..OutlierConfig::default()
        };
        for round in 0..20u64 {
            let p = pool(10);
            let t = (round + 1) * SEC;
            let barrier = std::sync::Barrier::new(10);
            std::thread::scope(|s| {
                for i in 0..10 {
                    let (p, cfg, barrier) = (&p, &cfg, &barrier);
                    s.spawn(move || {
                        fail(cfg, p, i, 4, t);
                        barrier.wait();
                        // Keep failing: a backend that stepped back after a
                        // collision tries again.
                        for _ in 0..200 {
                            if p[i].is_ejected(t) || fail(cfg, p, i, 1, t).is_some() {
                                break;
                            }
                        }
                    });
                }
            });
            let out = p.iter().filter(|b| b.is_ejected(t)).count();
            assert_eq!(out, 3, "round {round}");
            let counted: u32 = p.iter().map(|b| b.ejections.load(Relaxed)).sum();
            assert_eq!(counted, 3, "stepped-back ejections are not counted");
        }
    }

    #[test]
    fn history_is_forgiven_after_a_quiet_spell() {
        let cfg = OutlierConfig::default();
        let p = pool(3);
        let t = SEC;
        assert_eq!(fail(&cfg, &p, 0, 5, t), Some(Duration::from_secs(30)));
        let back = t + 30 * SEC;
        assert_eq!(fail(&cfg, &p, 0, 5, back), Some(Duration::from_secs(60)));
        let back = back + 60 * SEC;
        assert!(!forgive(&p[0], &cfg, back - 1), "still ejected");
        assert!(!forgive(&p[0], &cfg, back + 300 * SEC - 1));
        assert_eq!(p[0].ejections.load(Relaxed), 2);
        assert!(forgive(&p[0], &cfg, back + 300 * SEC));
        assert_eq!(p[0].ejections.load(Relaxed), 0);
        assert!(!forgive(&p[0], &cfg, back + 301 * SEC), "nothing left");
        assert!(!forgive(&p[1], &cfg, back), "never ejected");
        let later = back + 400 * SEC;
        assert_eq!(fail(&cfg, &p, 0, 5, later), Some(Duration::from_secs(30)));
    }

    #[test]
    fn disabled_detectors_do_nothing() {
        let cfg = OutlierConfig {
            consecutive_5xx: 0,
            consecutive_connect_failures: 0,
            ..OutlierConfig::default()
        };
        let p = pool(3);
        assert_eq!(fail(&cfg, &p, 0, 100, SEC), None);
        for _ in 0..100 {
            assert_eq!(record(&cfg, &p, &p[0], Outcome::ConnectFailure, SEC), None);
        }
        assert!(!p[0].is_ejected(SEC));
    }

    #[test]
    fn config_parses_and_validates() {
        let d: OutlierConfig = toml::from_str("").unwrap();
        assert_eq!(d, OutlierConfig::default());
        assert!(d.validate("p").is_empty());
        let c: OutlierConfig =
            toml::from_str("consecutive_5xx = 3\nbase_ejection = \"10s\"\nmax_ejection = \"1m\"\nmax_ejection_percent = 20")
                .unwrap();
        assert_eq!(c.consecutive_5xx, 3);
        assert_eq!(c.ejection_time(9), Duration::from_secs(60));
        assert!(toml::from_str::<OutlierConfig>("consecutive_500 = 1").is_err());
        assert!(toml::from_str::<OutlierConfig>("base_ejection = 30").is_err());
        let bad = OutlierConfig {
            base_ejection: Duration::ZERO,
            max_ejection: Duration::ZERO,
            max_ejection_percent: 101.0,
            ..d.clone()
        };
        let e = bad.validate("pools.web.outlier");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("pools.web.outlier.base_ejection: "));
        assert!(e[1].starts_with("pools.web.outlier.max_ejection_percent: "));
        let short = OutlierConfig {
            max_ejection: Duration::from_secs(10),
            ..d
        };
        assert_eq!(
            short.validate("o"),
            ["o.max_ejection: must be at least base_ejection (30s)"]
        );
        assert_eq!(
            short.ejection_time(3),
            Duration::from_secs(30),
            "max below base: base"
        );
        let json = serde_json::to_string(&OutlierConfig::default()).unwrap();
        assert_eq!(
            json,
            r#"{"consecutive_5xx":5,"consecutive_connect_failures":3,"base_ejection":"30s","max_ejection":"5m","max_ejection_percent":50.0}"#
        );
    }
}
