//! Health checks against a real local HTTP server: a DC whose endpoint stops
//! answering leaves the answers after `fall` failed checks and comes back
//! after `rise` good ones; until its first check completes it is "unknown"
//! and still answered.

use std::time::Duration;

use crate::harness::*;
use hickory_proto::rr::RecordType;

fn europe(srv: &Server) -> Vec<String> {
    addrs(&srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24")))
}

#[test]
fn dc_leaves_after_fall_and_returns_after_rise() {
    let hs = HealthServer::start(0);
    let port = hs.addr.port();
    let health = format!(
        r#"health = {{ http = "http://127.0.0.1:{port}/healthz", expect = [200], body = "ok", interval = "100ms", timeout = "80ms", rise = 2, fall = 3, jitter = 0.0 }}"#
    );
    let fx = Fixture::new(&zone_toml("", &[("fra", &health)], ""));
    let srv = fx.serve();

    srv.wait_for("fra up", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "up"
    });
    assert_eq!(europe(&srv), vec![FRA.to_string()]);
    // DCs without a check stay unknown, and unknown is answered.
    assert_eq!(srv.dc("iad")["status"], "unknown");

    hs.stop();
    srv.wait_for("fra down", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "down"
    });
    let h = srv.dc("fra")["health"].clone();
    assert!(
        h["checks"].as_u64().unwrap() >= 4,
        "up needs ≥1 check, down ≥3 more: {h}"
    );
    assert!(h["last_error"].as_str().is_some(), "{h}");
    // Frankfurt gone: Europe goes to the next nearest DC, iad.
    assert_eq!(europe(&srv), vec![IAD.to_string()]);
    // Degraded: TTL halved.
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(r.answers[0].ttl, 15);

    let hs = HealthServer::start(port);
    srv.wait_for("fra up again", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "up"
    });
    assert_eq!(europe(&srv), vec![FRA.to_string()]);
    assert!(srv.log().contains("fra"), "transitions are logged");
    let (_, metrics) = srv.api_get("/metrics");
    assert!(
        metrics.contains("boltz_health_transitions_total{zone=\"example.com.\",dc=\"fra\"} 3"),
        "{metrics}"
    );
    hs.stop();
}

#[test]
fn hysteresis_needs_consecutive_failures() {
    // A TCP check on a port nobody listens on: the first check decides
    // (down at once), so it never stays unknown for long.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let health = format!(
        r#"health = {{ tcp = "127.0.0.1:{port}", interval = "100ms", timeout = "80ms", rise = 2, fall = 2, jitter = 0.0 }}"#
    );
    let fx = Fixture::new(&zone_toml("", &[("fra", &health)], ""));
    let srv = fx.serve();
    srv.wait_for("fra down", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "down"
    });
    assert_eq!(europe(&srv), vec![IAD.to_string()]);
}
