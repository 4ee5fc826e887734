//! Tests of the concurrency limiter: admission up to the limit, shrinking
//! and recovering with latency, back-off on drops, no over-admission under
//! threads, and configuration checks.

use super::*;

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
