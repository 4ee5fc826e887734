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

fn fail(cfg: &OutlierConfig, p: &[Arc<Backend>], i: usize, n: u32, now: u64) -> Option<Duration> {
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
