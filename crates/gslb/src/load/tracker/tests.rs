//! Tests of the load tracker, with `now` passed in: smoothing, staleness
//! and restart, kept errors, operator overrides, reconfiguration.

use super::*;

fn feed_cfg() -> LoadConfig {
    LoadConfig {
        url: Some("http://127.0.0.1:9300/v1/load".to_owned()),
        stale_after: Some(Duration::from_secs(30)),
        smoothing: 0.3,
        fallback: 0.2,
        ..LoadConfig::default()
    }
}

fn reading(utilisation: f64, source: LoadSource) -> LoadReading {
    LoadReading {
        utilisation,
        source,
    }
}

fn close(a: LoadReading, b: LoadReading) -> bool {
    a.source == b.source && (a.utilisation - b.utilisation).abs() < 1e-9
}

#[test]
fn static_without_feed() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&LoadConfig {
        fallback: 0.4,
        ..LoadConfig::default()
    }));
    assert_eq!(t.current(t0), reading(0.4, LoadSource::Static));
    // Stray samples for a feedless DC do not override its static value.
    t.observe(0.9, t0);
    assert_eq!(t.current(t0), reading(0.4, LoadSource::Static));
}

#[test]
fn stale_until_first_sample() {
    let t0 = Instant::now();
    let t = LoadTracker::new(Some(&feed_cfg()));
    assert_eq!(t.current(t0), reading(0.2, LoadSource::Stale));
    assert_eq!(t.last_sample_age(t0), None);
}

#[test]
fn first_sample_initialises_then_ewma() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe(0.5, t0);
    assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));
    t.observe(1.0, t0 + Duration::from_secs(5));
    let now = t0 + Duration::from_secs(5);
    assert!(close(t.current(now), reading(0.65, LoadSource::Feed)));
    t.observe(1.0, t0 + Duration::from_secs(10));
    let now = t0 + Duration::from_secs(10);
    assert!(close(t.current(now), reading(0.755, LoadSource::Feed)));
}

#[test]
fn goes_stale_and_restarts_after_a_gap() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe(0.8, t0);
    let at_limit = t0 + Duration::from_secs(30);
    assert_eq!(t.current(at_limit), reading(0.8, LoadSource::Feed));
    let later = t0 + Duration::from_secs(31);
    assert_eq!(t.current(later), reading(0.2, LoadSource::Stale));
    assert_eq!(t.last_sample_age(later), Some(Duration::from_secs(31)));
    t.observe(0.1, later);
    assert_eq!(t.current(later), reading(0.1, LoadSource::Feed));
}

#[test]
fn errors_are_kept_and_do_not_touch_the_average() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe(0.5, t0);
    let t1 = t0 + Duration::from_secs(5);
    t.observe_error("connect: connection refused".to_owned(), t1);
    assert_eq!(t.last_error(), Some(("connect: connection refused", t1)));
    assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));

    t.observe(f64::NAN, t1);
    assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));
    assert!(t.last_error().unwrap().0.contains("finite number"));
    t.observe(-1.0, t1);
    assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));

    t.observe(0.5, t1);
    assert_eq!(t.last_error(), None);
}

#[test]
fn override_wins_until_cleared() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe(0.5, t0);
    t.set_override(Some(1.5)).unwrap();
    assert_eq!(t.current(t0), reading(1.5, LoadSource::Override));
    let later = t0 + Duration::from_secs(60);
    assert_eq!(t.current(later), reading(1.5, LoadSource::Override));
    assert_eq!(t.override_value(), Some(1.5));

    assert_eq!(t.set_override(Some(-0.1)), Err(InvalidUtilisation(-0.1)));
    assert_eq!(t.override_value(), Some(1.5));
    assert!(t.set_override(Some(f64::INFINITY)).is_err());

    t.set_override(None).unwrap();
    assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));

    let mut s = LoadTracker::new(None);
    assert_eq!(s.current(t0), reading(0.0, LoadSource::Static));
    s.set_override(Some(0.9)).unwrap();
    assert_eq!(s.current(t0), reading(0.9, LoadSource::Override));
}

#[test]
fn reconfigure_keeps_state() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe(0.5, t0);
    t.reconfigure(Some(&LoadConfig {
        smoothing: 1.0,
        ..feed_cfg()
    }));
    assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));
    t.observe(0.9, t0);
    assert_eq!(t.current(t0), reading(0.9, LoadSource::Feed));

    t.set_override(Some(0.3)).unwrap();
    t.reconfigure(None);
    assert_eq!(t.current(t0), reading(0.3, LoadSource::Override));
    t.set_override(None).unwrap();
    assert_eq!(t.current(t0), reading(0.0, LoadSource::Static));
}

#[test]
fn out_of_range_config_is_clamped() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&LoadConfig {
        smoothing: f64::NAN,
        fallback: -3.0,
        ..feed_cfg()
    }));
    assert_eq!(t.current(t0), reading(0.0, LoadSource::Stale));
    t.observe(0.5, t0);
    t.observe(0.7, t0);
    assert_eq!(t.current(t0), reading(0.7, LoadSource::Feed));
}

#[test]
fn serialises_lowercase() {
    let json = serde_json::to_string(&reading(0.5, LoadSource::Stale)).unwrap();
    assert_eq!(json, r#"{"utilisation":0.5,"source":"stale"}"#);
}

fn report(utilisation: f64, seq: Option<u64>) -> FeedReport {
    FeedReport {
        seq,
        ..FeedReport::new(utilisation)
    }
}

#[test]
fn a_repeated_seq_is_not_applied_again() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    // One node polls once per producer interval, the other twice: the
    // same EWMA steps, bit for bit.
    let mut once = LoadTracker::new(Some(&feed_cfg()));
    let mut twice = LoadTracker::new(Some(&feed_cfg()));
    for (i, u) in [0.5, 1.0, 0.25, 0.8].into_iter().enumerate() {
        let r = report(u, Some(100 + i as u64));
        let at = t0 + s * (2 * i as u32);
        assert_eq!(once.observe_report(&r, at, None), Ok(true));
        assert_eq!(twice.observe_report(&r, at, None), Ok(true));
        assert_eq!(twice.observe_report(&r, at + s, None), Ok(false));
    }
    let end = t0 + s * 8;
    assert_eq!(
        once.current(end).utilisation.to_bits(),
        twice.current(end).utilisation.to_bits()
    );
    // Without seq every poll is a sample.
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    assert_eq!(t.observe_report(&report(0.5, None), t0, None), Ok(true));
    assert_eq!(t.observe_report(&report(1.0, None), t0, None), Ok(true));
    assert!(close(t.current(t0), reading(0.65, LoadSource::Feed)));
    // A producer that restarts its numbering (far below) is applied.
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    t.observe_report(&report(0.5, Some(90)), t0, None).unwrap();
    assert_eq!(t.observe_report(&report(0.5, Some(0)), t0, None), Ok(true));
}

#[test]
fn a_repeated_seq_does_not_keep_the_feed_fresh() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    let frozen = report(0.9, Some(1));
    t.observe_report(&frozen, t0, None).unwrap();
    let later = t0 + Duration::from_secs(31);
    assert_eq!(t.observe_report(&frozen, later, None), Ok(false));
    assert_eq!(t.current(later), reading(0.2, LoadSource::Stale));
}

#[test]
fn health_and_capacity_last_while_fresh() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    assert_eq!(t.facts(t0), None);
    let down = FeedReport {
        capacity: Some(9000.0),
        health: Some(FeedHealth::Down),
        reason: Some("pool web: 0 of 2 backends healthy".into()),
        ..FeedReport::new(0.5)
    };
    t.observe_report(&down, t0, None).unwrap();
    let facts = FeedFacts {
        capacity: Some(9000.0),
        health: Some(FeedHealth::Down),
        reason: Some("pool web: 0 of 2 backends healthy".into()),
        ..FeedFacts::default()
    };
    assert_eq!(t.facts(t0), Some(&facts));
    // An override pins utilisation only.
    t.set_override(Some(0.1)).unwrap();
    assert_eq!(t.facts(t0), Some(&facts));
    t.set_override(None).unwrap();
    // Each report replaces them all: what it leaves out is gone.
    let t1 = t0 + Duration::from_secs(5);
    t.observe_report(&FeedReport::new(0.5), t1, None).unwrap();
    assert_eq!(t.facts(t1), Some(&FeedFacts::default()));
    t.observe_report(&down, t1, None).unwrap();
    // Stale: forgotten, the probe alone decides and the declared capacity
    // applies; a fresh report brings them back.
    let stale = t1 + Duration::from_secs(31);
    assert_eq!(t.facts(stale), None);
    t.observe_report(&down, stale, None).unwrap();
    assert_eq!(t.facts(stale), Some(&facts));
    // A reload that removes the feed forgets them too.
    t.reconfigure(None);
    assert_eq!(t.facts(stale), None);
}

#[test]
fn rejected_reports_are_kept_as_errors() {
    let t0 = Instant::now();
    let mut t = LoadTracker::new(Some(&feed_cfg()));
    let old = FeedReport {
        timestamp_unix_ms: Some(1_000),
        ..FeedReport::new(0.7)
    };
    let err = t.observe_report(&old, t0, Some(100_000)).unwrap_err();
    assert_eq!(
        err,
        "`timestamp_unix_ms` is 99s old, beyond load.stale_after (30s)"
    );
    assert_eq!(t.last_error(), Some((err.as_str(), t0)));
    assert_eq!(t.current(t0), reading(0.2, LoadSource::Stale));

    // A DC without a feed takes no report.
    let mut s = LoadTracker::new(None);
    let err = s
        .observe_report(&FeedReport::new(0.5), t0, None)
        .unwrap_err();
    assert!(err.contains("no load feed"), "{err}");
    assert_eq!(s.facts(t0), None);
}

#[test]
fn missed_samples_are_caught_up_from_recent_and_old_ones_ignored() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let us = [0.5, 1.0, 0.25, 0.8];
    // One node sees every report; the other misses the middle two and
    // catches up from the last one's `recent`: the same average.
    let mut all = LoadTracker::new(Some(&feed_cfg()));
    for (i, u) in us.into_iter().enumerate() {
        all.observe_report(&report(u, Some(i as u64)), t0 + s, None)
            .unwrap();
    }
    let mut gaps = LoadTracker::new(Some(&feed_cfg()));
    gaps.observe_report(&report(us[0], Some(0)), t0 + s, None)
        .unwrap();
    let last = FeedReport {
        recent: vec![(0, us[0]), (1, us[1]), (2, us[2])],
        ..report(us[3], Some(3))
    };
    assert_eq!(gaps.observe_report(&last, t0 + s, None), Ok(true));
    assert_eq!(gaps.current(t0 + s), all.current(t0 + s));
    // A late answer with an older number is no sample.
    assert_eq!(
        gaps.observe_report(&report(0.9, Some(2)), t0 + s, None),
        Ok(false)
    );
    assert_eq!(gaps.current(t0 + s), all.current(t0 + s));
}

#[test]
fn a_step_folds_exactly_the_samples_measured_two_polls_before_it() {
    let t0 = Instant::now();
    // Polled every 5 s (feed_cfg): a sample is in a step when measured at
    // least 10 s before its boundary.
    let dated = |u: f64, seq: u64, ts: u64| FeedReport {
        timestamp_unix_ms: Some(ts),
        ..report(u, Some(seq))
    };
    // Node a gets each report at once, node b a poll later (and misses
    // the one at 12 s, caught up from `recent`).
    let mut a = LoadTracker::new(Some(&feed_cfg()));
    let mut b = LoadTracker::new(Some(&feed_cfg()));
    let reports = [
        (0.5, 1, 2_000),
        (1.0, 2, 7_000),
        (0.25, 3, 12_000),
        (0.8, 4, 17_000),
    ];
    for &(u, seq, ts) in &reports {
        assert_eq!(
            a.observe_report(&dated(u, seq, ts), t0, None),
            Ok(false),
            "held"
        );
    }
    let mut last = dated(0.8, 4, 17_000);
    last.recent = vec![(2, 1.0), (3, 0.25)];
    b.observe_report(&dated(0.5, 1, 2_000), t0, None).unwrap();
    b.observe_report(&dated(1.0, 2, 7_000), t0, None).unwrap();
    b.observe_report(&last, t0, None).unwrap();
    // Nothing is in the average before a step (the fallback stands).
    assert_eq!(a.current(t0).utilisation, 0.2);
    // The step at 20 s takes the samples of 2 s and 7 s, not 12 s or 17 s.
    assert!(a.settle(20_000, t0) && b.settle(20_000, t0));
    assert_eq!(a.current(t0), b.current(t0));
    assert!(close(a.current(t0), reading(0.65, LoadSource::Feed)));
    // The step at 30 s takes the rest, in order, on both alike.
    assert!(a.settle(30_000, t0) && b.settle(30_000, t0));
    assert_eq!(
        a.current(t0).utilisation.to_bits(),
        b.current(t0).utilisation.to_bits()
    );
    assert!(!a.settle(40_000, t0), "nothing left: no fresh reading");
}
