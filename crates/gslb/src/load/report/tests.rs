//! Tests of the load document: each field, errors naming the field, nulls
//! and unknown fields, the age check, and the round trip of what a
//! producer writes through what every reader parses.

use super::*;

fn parse_err(body: &str) -> String {
    FeedReport::parse(body.as_bytes(), Some(100.0))
        .unwrap_err()
        .to_string()
}

fn parse_ok(body: &str) -> FeedReport {
    FeedReport::parse(body.as_bytes(), Some(100.0)).unwrap()
}

#[test]
fn parse_errors_name_the_field() {
    assert_eq!(
        parse_err(r#"{"utilisation": -0.5}"#),
        "`utilisation` must be a finite number ≥ 0, got -0.5"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": "high"}"#),
        "`utilisation` must be a number, got a string"
    );
    assert_eq!(
        parse_err(r#"{"requests_per_second": -3}"#),
        "`requests_per_second` must be a finite number ≥ 0, got -3"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "timestamp_unix_ms": 1.5}"#),
        "`timestamp_unix_ms` must be a non-negative integer, got a number"
    );
    assert_eq!(
        parse_err(r#"{"load": 0.5}"#),
        "neither `utilisation` nor `requests_per_second` present"
    );
    assert_eq!(
        parse_err(r#"[0.5]"#),
        "invalid JSON: expected an object, got an array"
    );
    assert!(parse_err("").starts_with("invalid JSON: "));
    assert!(parse_err(r#"{"utilisation": NaN}"#).starts_with("invalid JSON: "));
    assert!(parse_err(r#"{"utilisation": 1e999}"#).starts_with("invalid JSON: "));
    assert_eq!(
        FeedReport::parse(br#"{"requests_per_second": 5}"#, Some(0.0))
            .unwrap_err()
            .to_string(),
        "`requests_per_second` needs the DC's capacity, which is not configured"
    );
}

#[test]
fn new_fields_errors_name_the_field() {
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "health": "sick"}"#),
        r#"`health` must be one of "up", "degraded", "down", got "sick""#
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "health": "Down"}"#),
        r#"`health` must be one of "up", "degraded", "down", got "Down""#
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "health": 0}"#),
        r#"`health` must be one of "up", "degraded", "down", got a number"#
    );
    let long = format!(r#"{{"utilisation": 0.1, "health": "{}"}}"#, "x".repeat(100));
    assert!(parse_err(&long).ends_with("got a long string"));
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "capacity": 0}"#),
        "`capacity` must be greater than 0 (requests/s), got 0"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "capacity": -5}"#),
        "`capacity` must be a finite number ≥ 0, got -5"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "capacity": "9000"}"#),
        "`capacity` must be a number, got a string"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "seq": -1}"#),
        "`seq` must be a non-negative integer, got a number"
    );
    assert_eq!(
        parse_err(r#"{"utilisation": 0.1, "reason": ["x"]}"#),
        "`reason` must be a string, got an array"
    );
}

#[test]
fn parse_reads_each_field() {
    let r = parse_ok(
        r#"{"utilisation": 0.42, "capacity": 9000, "health": "degraded",
            "reason": "pool web: 1 of 2 backends healthy", "seq": 123456,
            "timestamp_unix_ms": 17, "datacenter": "fra"}"#,
    );
    assert_eq!(
        r,
        FeedReport {
            utilisation: 0.42,
            capacity: Some(9000.0),
            health: Some(FeedHealth::Degraded),
            reason: Some("pool web: 1 of 2 backends healthy".into()),
            seq: Some(123456),
            timestamp_unix_ms: Some(17),
            recent: Vec::new(),
            demand: Vec::new(),
        }
    );
    assert_eq!(
        parse_ok(r#"{"utilisation": 1, "health": "up"}"#).health,
        Some(FeedHealth::Up)
    );
    assert_eq!(
        parse_ok(r#"{"utilisation": 1, "health": "down"}"#).health,
        Some(FeedHealth::Down)
    );
    assert_eq!(parse_ok(r#"{"utilisation": 2}"#), FeedReport::new(2.0));
}

#[test]
fn requests_per_second_prefers_the_reported_capacity() {
    // The document's own capacity first, then the declared one.
    let r = parse_ok(r#"{"requests_per_second": 4500, "capacity": 9000}"#);
    assert_eq!((r.utilisation, r.capacity), (0.5, Some(9000.0)));
    assert_eq!(parse_ok(r#"{"requests_per_second": 50}"#).utilisation, 0.5);
    let r = FeedReport::parse(br#"{"requests_per_second": 50, "capacity": 200}"#, None).unwrap();
    assert_eq!(r.utilisation, 0.25);
}

#[test]
fn parse_accepts_nulls_and_unknown_fields() {
    let r = parse_ok(
        r#"{"utilisation": null, "requests_per_second": 50, "timestamp_unix_ms": null,
            "capacity": null, "health": null, "reason": null, "seq": null, "v": 2}"#,
    );
    assert_eq!(r, FeedReport::new(0.5));
}

#[test]
fn round_trip_of_what_a_producer_writes() {
    let reports = [
        FeedReport::new(0.1 + 0.2),
        FeedReport {
            utilisation: 1.0 / 3.0,
            capacity: Some(9000.0 * 0.7),
            health: Some(FeedHealth::Down),
            reason: Some("pool web: 0 of 2 backends healthy \"quoted\" ü".into()),
            seq: Some(u64::MAX),
            timestamp_unix_ms: Some(1_735_689_600_000),
            recent: vec![(u64::MAX - 2, 0.25), (u64::MAX - 1, 1.0 / 7.0)],
            demand: vec![(51.5, -0.1, 120.0 / 7.0), (-33.9, 151.2, 0.0)],
        },
        FeedReport {
            health: Some(FeedHealth::Degraded),
            capacity: Some(f64::MIN_POSITIVE),
            ..FeedReport::new(1e-7 * 7.0)
        },
    ];
    for report in reports {
        let doc = serde_json::to_value(&report).unwrap();
        let text = serde_json::to_vec(&doc).unwrap();
        // Bit for bit: a node applying its own report and one parsing it
        // from `/v1/site` price with the same numbers.
        assert_eq!(FeedReport::parse(&text, None).unwrap(), report, "{doc}");
    }
    // Absent fields are left out, not written as null.
    assert_eq!(
        serde_json::to_string(&FeedReport::new(0.5)).unwrap(),
        r#"{"utilisation":0.5}"#
    );
}

#[test]
fn check_rejects_old_samples_and_bad_values() {
    let stale_after = Duration::from_millis(300);
    let now = 1_000_000;
    let at = |ts| FeedReport {
        timestamp_unix_ms: Some(ts),
        ..FeedReport::new(0.5)
    };
    assert_eq!(at(now).check(stale_after, Some(now)), Ok(()));
    // The future is clock skew; no clock, no check.
    assert_eq!(at(now + 5000).check(stale_after, Some(now)), Ok(()));
    assert_eq!(at(0).check(stale_after, None), Ok(()));
    assert_eq!(
        at(now - 45_000)
            .check(stale_after, Some(now))
            .unwrap_err()
            .to_string(),
        "`timestamp_unix_ms` is 45s old, beyond load.stale_after (300ms)"
    );
    // A report built in code skipped the parser's checks.
    let bad = FeedReport {
        capacity: Some(0.0),
        ..FeedReport::new(0.5)
    };
    assert!(bad
        .check(stale_after, None)
        .unwrap_err()
        .to_string()
        .starts_with("`capacity`"));
    assert!(FeedReport::new(f64::NAN)
        .check(stale_after, None)
        .unwrap_err()
        .to_string()
        .starts_with("`utilisation`"));
}

#[test]
fn gauge_values() {
    assert_eq!(FeedHealth::Up.gauge(), 1.0);
    assert_eq!(FeedHealth::Degraded.gauge(), 0.5);
    assert_eq!(FeedHealth::Down.gauge(), 0.0);
}

#[test]
fn recent_samples_are_read_and_checked() {
    let r = parse_ok(r#"{"utilisation": 0.5, "seq": 9, "recent": [[7, 0.25], [8, 1.5]]}"#);
    assert_eq!(r.recent, [(7, 0.25), (8, 1.5)]);
    for bad in [
        r#"{"utilisation": 0.5, "recent": 3}"#,
        r#"{"utilisation": 0.5, "recent": [[7]]}"#,
        r#"{"utilisation": 0.5, "recent": [[7, -1]]}"#,
        r#"{"utilisation": 0.5, "recent": [["x", 1]]}"#,
    ] {
        let e = FeedReport::parse(bad.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`recent`"), "{bad}: {e}");
    }
}

#[test]
fn demand_cells_are_read_and_checked() {
    let r = parse_ok(r#"{"utilisation": 0.5, "demand": [[51.5, -0.1, 12.5], [1.3, 103.8, 0]]}"#);
    assert_eq!(r.demand, [(51.5, -0.1, 12.5), (1.3, 103.8, 0.0)]);
    for bad in [
        r#"{"utilisation": 0.5, "demand": {}}"#,
        r#"{"utilisation": 0.5, "demand": [[51.5, -0.1]]}"#,
        r#"{"utilisation": 0.5, "demand": [[95, 0, 1]]}"#,
        r#"{"utilisation": 0.5, "demand": [[0, 0, -1]]}"#,
    ] {
        let e = FeedReport::parse(bad.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`demand`"), "{bad}: {e}");
    }
}
