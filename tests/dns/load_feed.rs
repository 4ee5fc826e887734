//! Load feeds: boltz polls a DC's load URL (a real local HTTP server here),
//! smooths it, prices the DC when it runs above target, falls back to the
//! static value when the feed goes stale, and takes the feed's word on the
//! DC's health and capacity while it is fresh.

use std::time::Duration;

use crate::harness::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

#[test]
fn feed_drives_utilisation_and_price_and_goes_stale() {
    let feed = HttpServer::with_body(0, r#"{"utilisation": 1.5, "requests_per_second": 1}"#);
    let load = format!(
        r#"load = {{ url = "http://{}/v1/load", interval = "50ms", timeout = "40ms", stale_after = "400ms", smoothing = 1.0, fallback = 0.25 }}"#,
        feed.addr
    );
    let steering =
        "target_utilisation = 0.8\nprice_step = 0.2\nprice_max = 1.0\nload_interval = \"100ms\"\ndemand_lag = 1";
    let fx = Fixture::new(&zone_toml(steering, &[("fra", &load)], ""));
    let srv = fx.serve();

    srv.wait_for("feed utilisation", Duration::from_secs(10), || {
        let dc = srv.dc("fra");
        dc["load_source"] == "feed" && dc["utilisation"] == 1.5
    });
    srv.wait_for("price at max", Duration::from_secs(10), || {
        srv.dc("fra")["price"] == 1.0
    });

    // requests_per_second is used (÷ capacity 1000) when utilisation is absent.
    feed.set_body(r#"{"requests_per_second": 200}"#);
    srv.wait_for("rate-based utilisation", Duration::from_secs(10), || {
        srv.dc("fra")["utilisation"] == 0.2
    });
    srv.wait_for("price back to 0", Duration::from_secs(10), || {
        srv.dc("fra")["price"] == 0.0
    });

    // Feed gone: after stale_after the static fallback applies.
    feed.stop();
    srv.wait_for("stale fallback", Duration::from_secs(10), || {
        let dc = srv.dc("fra");
        dc["load_source"] == "stale" && dc["utilisation"] == 0.25
    });
}

fn europe(srv: &Server) -> Message {
    srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"))
}

/// A feed's word on health acts as a probe's: `down` takes the DC out of
/// the answers (status says why), `degraded` halves the TTL, its capacity
/// is the effective one, and a stale feed's word is forgotten.
#[test]
fn feed_health_down_removes_the_dc_and_says_why() {
    let feed = HttpServer::with_body(0, r#"{"utilisation": 0.5}"#);
    let load = format!(
        r#"load = {{ url = "http://{}/v1/site", interval = "50ms", timeout = "40ms", stale_after = "400ms", smoothing = 1.0 }}"#,
        feed.addr
    );
    let fx = Fixture::new(&zone_toml("", &[("fra", &load)], ""));
    let srv = fx.serve();
    srv.wait_for("feed utilisation", Duration::from_secs(10), || {
        srv.dc("fra")["load_source"] == "feed"
    });
    assert_eq!(addrs(&europe(&srv)), [FRA]);
    let fra = srv.dc("fra");
    assert_eq!(fra["feed_health"], serde_json::Value::Null, "{fra}");
    assert_eq!(fra["effective_capacity"], 1000.0, "{fra}");

    feed.set_body(r#"{"utilisation":0.5,"health":"down","reason":"x"}"#);
    srv.wait_for("fra down by its feed", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "down"
    });
    let fra = srv.dc("fra");
    assert_eq!(fra["feed_health"], "down", "{fra}");
    assert_eq!(fra["feed_reason"], "x", "{fra}");
    for _ in 0..20 {
        let r = europe(&srv);
        assert!(!addrs(&r).contains(&FRA.to_string()), "{r:?}");
        assert_eq!(r.answers[0].ttl, 15, "degraded: TTL halved");
    }
    let (code, body) = srv.api_get("/v1/explain?name=www.example.com&subnet=81.2.69.0/24&type=A");
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    let row = e["datacenters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["datacenter"] == "fra")
        .unwrap();
    assert_eq!(
        (&row["feed_health"], &row["feed_reason"]),
        (&"down".into(), &"x".into())
    );
    let (_, metrics) = srv.api_get("/metrics");
    assert!(
        metrics.contains("boltz_dc_feed_health{zone=\"example.com.\",dc=\"fra\"} 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("boltz_dc_feed_health{zone=\"example.com.\",dc=\"iad\"}"),
        "a DC whose feed says nothing has no sample: {metrics}"
    );
    crate::exposition::check_exposition("boltz serve /metrics", &metrics);

    // Degraded: usable again (it re-enters at a price), status no longer
    // down; the fed capacity is the effective one.
    feed.set_body(r#"{"utilisation":0.5,"health":"degraded","capacity":4000}"#);
    srv.wait_for("fra degraded", Duration::from_secs(10), || {
        srv.dc("fra")["feed_health"] == "degraded"
    });
    let fra = srv.dc("fra");
    assert_eq!(
        fra["status"], "up",
        "no probe, and its feed says it serves: {fra}"
    );
    assert_eq!(fra["effective_capacity"], 4000.0, "{fra}");
    assert_eq!(fra["capacity"], 1000.0, "{fra}");
    let (_, metrics) = srv.api_get("/metrics");
    assert!(
        metrics.contains("boltz_dc_capacity{zone=\"example.com.\",dc=\"fra\"} 4000\n"),
        "{metrics}"
    );

    // Stale: the feed's word and capacity are forgotten.
    feed.set_body(r#"{"utilisation":0.5,"health":"down","reason":"x"}"#);
    srv.wait_for("fra down again", Duration::from_secs(10), || {
        srv.dc("fra")["status"] == "down"
    });
    feed.stop();
    srv.wait_for("stale feed forgotten", Duration::from_secs(10), || {
        let fra = srv.dc("fra");
        fra["load_source"] == "stale"
            && fra["feed_health"].is_null()
            && fra["status"] == "unknown"
            && fra["effective_capacity"] == 1000.0
    });

    // This node reports for no datacenter.
    let (code, body) = srv.api_get("/v1/site");
    assert_eq!(code, 404, "{body}");
}
