//! Tests of reports applied to the state owner: a feed's `down` removes a
//! DC from decisions and shows why, `degraded` shortens the TTL, a fed
//! capacity weighs the global utilisation, and rejected reports are errors.

use std::sync::Arc;

use super::*;
use crate::control::{decide, explain, DcStatus, DcView, Family};
use crate::load::FeedHealth;
use crate::steer::LatLon;
use crate::zone::ZoneSet;

/// fra and sin, each with a feed (never polled: no tasks run here).
fn control() -> Arc<Control> {
    let feed = r#"load = { url = "http://127.0.0.1:9/v1/site", interval = "1s" }"#;
    let text = format!(
        r#"origin = "example.com."
soa = {{ mname = "ns1.example.com.", rname = "h.example.com.", serial = 1 }}
ns = ["ns1.example.com."]
[steering]
temperature = 0.05
[datacenters.fra]
location = [50.11, 8.68]
capacity = 1000
ipv4 = ["192.0.2.10"]
{feed}
[datacenters.sin]
location = [1.35, 103.82]
capacity = 1000
ipv4 = ["203.0.113.10"]
{feed}
[datacenters.lab]
location = [0.0, 0.0]
capacity = 1000
ipv4 = ["198.51.100.1"]
[records]
www = {{ type = "steered", datacenters = ["fra", "sin"], ttl = 60 }}
"#
    );
    let zone = ZoneSet::parse_one(std::path::Path::new("example.com.toml"), &text).unwrap();
    Control::new(ZoneSet::new(vec![zone]), false).unwrap()
}

/// The DCs a client in Frankfurt is answered with over many cells, and the
/// TTL of the last answer.
fn answers_near_fra(c: &Control) -> (Vec<String>, u32) {
    let world = c.world_full();
    let zone = &world.zones.zones[0];
    let st = zone.any_steered().unwrap();
    let near = LatLon {
        lat: 50.0,
        lon: 8.0,
    };
    let mut names = Vec::new();
    let mut ttl = 0;
    for cell in 0..200 {
        let d = decide(
            zone,
            &world.views[0],
            st,
            Family::V4,
            Some(near),
            cell,
            None,
        );
        ttl = d.ttl;
        for i in d.chosen(zone, st) {
            let name = &zone.datacenters[i].name;
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names.sort();
    (names, ttl)
}

/// The DC named in the current snapshot.
fn view(c: &Control, name: &str) -> DcView {
    let world = c.world_full();
    let i = world.zones.zones[0]
        .datacenters
        .iter()
        .position(|d| d.name == name)
        .unwrap();
    world.views[0].dcs[i].clone()
}

fn with_health(health: FeedHealth, seq: u64) -> FeedReport {
    FeedReport {
        health: Some(health),
        reason: Some("pool web: 0 of 2 backends healthy".into()),
        seq: Some(seq),
        ..FeedReport::new(0.5)
    }
}

#[test]
fn a_feed_saying_down_removes_the_dc() {
    let c = control();
    assert_eq!(answers_near_fra(&c), (vec!["fra".to_owned()], 60));

    assert_eq!(
        c.apply_report("fra", None, with_health(FeedHealth::Down, 1)),
        Ok(1)
    );
    let fra = view(&c, "fra");
    assert!(!fra.usable());
    assert_eq!(fra.status(), DcStatus::Down);
    assert_eq!(
        fra.feed_reason.as_deref(),
        Some("pool web: 0 of 2 backends healthy")
    );
    let (names, ttl) = answers_near_fra(&c);
    assert_eq!(names, ["sin"]);
    assert!(ttl < 60, "an unusable candidate shortens the TTL");
    // Explain says why, in the table and in its JSON.
    let e = explain(
        &c.world(),
        None,
        "www.example.com",
        "192.0.2.1".parse().unwrap(),
        None,
        Family::V4,
    )
    .unwrap();
    assert!(
        e.render()
            .contains("fra excluded: its feed says down (pool web: 0 of 2 backends healthy)"),
        "{}",
        e.render()
    );
    let row = &serde_json::to_value(&e).unwrap()["datacenters"][0];
    assert_eq!(row["feed_health"], "down");
    assert_eq!(row["status"], "down");
    assert_eq!(row["usable"], false);

    // The next report says up: back, and shown up (no probe has spoken,
    // its own feed says it serves).
    assert_eq!(
        c.apply_report("fra", None, with_health(FeedHealth::Up, 2)),
        Ok(1)
    );
    assert!(view(&c, "fra").usable());
    assert_eq!(view(&c, "fra").status(), DcStatus::Up);
}

#[test]
fn a_feed_saying_down_and_a_probe_combine() {
    let c = control();
    c.set_health("fra", None, true).unwrap();
    c.apply_report("fra", None, with_health(FeedHealth::Down, 1))
        .unwrap();
    assert!(!view(&c, "fra").usable(), "feed down, probe up");
    c.apply_report("fra", None, with_health(FeedHealth::Up, 2))
        .unwrap();
    c.set_health("fra", None, false).unwrap();
    assert!(!view(&c, "fra").usable(), "probe down, feed up");
    c.set_health("fra", None, true).unwrap();
    assert!(view(&c, "fra").usable());
}

#[test]
fn a_feed_saying_degraded_shortens_the_ttl() {
    let c = control();
    c.apply_report("sin", None, with_health(FeedHealth::Degraded, 1))
        .unwrap();
    let sin = view(&c, "sin");
    assert!(sin.usable() && sin.degraded());
    assert_eq!(sin.status(), DcStatus::Up);
    let (names, ttl) = answers_near_fra(&c);
    assert_eq!(names, ["fra"]);
    assert!(ttl < 60, "ttl {ttl}");
}

#[test]
fn a_fed_capacity_weighs_the_global_utilisation() {
    let c = control();
    let report = |u: f64, capacity: Option<f64>, seq| FeedReport {
        capacity,
        seq: Some(seq),
        ..FeedReport::new(u)
    };
    c.apply_report("fra", None, report(1.0, None, 1)).unwrap();
    c.apply_report("sin", None, report(0.0, None, 1)).unwrap();
    // 1000·1 over 3000 declared (lab has no feed: 0 at 1000).
    let g = c.world().views[0].global_utilisation;
    assert!((g - 1.0 / 3.0).abs() < 1e-12, "{g}");
    c.apply_report("fra", None, report(1.0, Some(8000.0), 2))
        .unwrap();
    assert_eq!(view(&c, "fra").capacity, 8000.0);
    let g = c.world().views[0].global_utilisation;
    assert!((g - 0.8).abs() < 1e-12, "{g}");
}

#[test]
fn rejected_reports_are_errors() {
    let c = control();
    assert_eq!(
        c.apply_report("nope", None, FeedReport::new(0.5)),
        Err(ControlError::NoSuchDatacenter("nope".into()))
    );
    let err = c
        .apply_report("lab", None, FeedReport::new(0.5))
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Report(m) if m.contains("no load feed")),
        "{err}"
    );
    let bad = FeedReport {
        capacity: Some(-1.0),
        ..FeedReport::new(0.5)
    };
    let err = c.apply_report("fra", None, bad).unwrap_err();
    assert!(err.to_string().starts_with("report: `capacity`"), "{err}");
}

#[test]
fn a_repeated_report_is_not_fresh_again() {
    let c = control();
    let r = FeedReport {
        seq: Some(5),
        ..FeedReport::new(0.5)
    };
    c.apply_report("fra", None, r.clone()).unwrap();
    let key = ("example.com.".to_owned(), "fra".to_owned());
    let take_fresh = || {
        let mut inner = c.lock();
        std::mem::take(&mut inner.dcs.get_mut(&key).unwrap().fresh)
    };
    assert!(take_fresh());
    c.apply_report("fra", None, r).unwrap();
    assert!(
        !take_fresh(),
        "the same seq is no new reading for the price step"
    );
}
