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
