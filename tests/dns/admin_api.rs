//! The local API: drain and undrain with and without the token, load set
//! through the API, status and metrics, the all-down policies, and bodies
//! that are wrong get a 4xx naming the field.

use crate::harness::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn europe(srv: &Server) -> hickory_proto::op::Message {
    srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"))
}

#[test]
fn drain_requires_the_token_and_moves_answers() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    assert_eq!(addrs(&europe(&srv)), vec![FRA.to_string()]);

    let (code, body) = srv.api_send("POST", "/v1/datacenters/fra/drain", None, None);
    assert_eq!(code, 401, "{body}");
    let (code, _) = srv.api_send("POST", "/v1/datacenters/fra/drain", None, Some("wrong"));
    assert_eq!(code, 401);
    assert_eq!(
        addrs(&europe(&srv)),
        vec![FRA.to_string()],
        "refused drain changed nothing"
    );

    let (code, body) = srv.api_send("POST", "/v1/datacenters/fra/drain", None, Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    assert_eq!(srv.dc("fra")["status"], "drained");
    let r = europe(&srv);
    assert_eq!(addrs(&r), vec![IAD.to_string()]);
    assert_eq!(
        r.answers[0].ttl, 15,
        "TTL halved while a candidate is drained"
    );

    let (code, _) = srv.api_send("DELETE", "/v1/datacenters/fra/drain", None, Some(TOKEN));
    assert_eq!(code, 200);
    assert_eq!(addrs(&europe(&srv)), vec![FRA.to_string()]);

    let (code, body) = srv.api_send("POST", "/v1/datacenters/nope/drain", None, Some(TOKEN));
    assert_eq!(code, 404);
    assert!(body.contains("nope"), "{body}");
}

#[test]
fn an_undrained_dc_is_priced_out_at_once_and_ramps_back() {
    let fx = Fixture::new(&zone_toml(
        "load_interval = \"100ms\"\ndemand_lag = 1",
        &[],
        "",
    ));
    let srv = fx.serve();
    assert_eq!(addrs(&europe(&srv)), vec![FRA.to_string()]);
    let (code, body) = srv.api_send("POST", "/v1/datacenters/fra/drain", None, Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    srv.wait_for(
        "a price step to see the drain",
        std::time::Duration::from_secs(5),
        || srv.dc("fra")["price_phase"] == "unusable",
    );
    let (code, _) = srv.api_send("DELETE", "/v1/datacenters/fra/drain", None, Some(TOKEN));
    assert_eq!(code, 200);
    // No query sees it at its old price: it enters priced out of every cell.
    let fra = srv.dc("fra");
    assert_eq!(fra["price_phase"], "ramping", "{fra}");
    assert!(fra["price"].as_f64().unwrap() > 0.0, "{fra}");
    assert_eq!(addrs(&europe(&srv)), vec![IAD.to_string()]);
    // Its price then comes down (slow start) until Europe is its own again.
    srv.wait_for(
        "fra back for Europe",
        std::time::Duration::from_secs(10),
        || addrs(&europe(&srv)) == vec![FRA.to_string()],
    );
    // Without a load feed it never sees demand, so the price keeps coming
    // down to nothing.
    srv.wait_for(
        "fra's price back to 0",
        std::time::Duration::from_secs(10),
        || srv.dc("fra")["price"] == 0.0,
    );
}

#[test]
fn load_via_api_and_bad_bodies() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let (code, body) = srv.api_send(
        "PUT",
        "/v1/datacenters/iad/load",
        Some(r#"{"utilisation": 0.6}"#),
        None,
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = srv.api_send(
        "PUT",
        "/v1/datacenters/iad/load",
        Some(r#"{"utilisation": 0.6}"#),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let dc = srv.dc("iad");
    assert_eq!(dc["utilisation"], 0.6);
    assert_eq!(dc["load_source"], "override");
    let s = srv.status();
    let u = s["zones"][0]["global_utilisation"].as_f64().unwrap();
    assert!((u - 0.2).abs() < 1e-9, "global utilisation {u}");
    // Auto temperature follows stale feeds, not demand: none are stale.
    let t = s["zones"][0]["temperature"].as_f64().unwrap();
    assert!((t - 0.1).abs() < 1e-9, "auto temperature {t}");

    for (body, field) in [
        (r#"{"utilisation": -1}"#, "utilisation"),
        (r#"{"utilisation": "high"}"#, "utilisation"),
        (r#"{"utilization": 0.5}"#, "utilization"),
        ("not json", "body"),
    ] {
        let (code, resp) = srv.api_send("PUT", "/v1/datacenters/iad/load", Some(body), Some(TOKEN));
        assert!((400..500).contains(&code), "{body} → {code}");
        assert!(resp.contains(field), "{body} → {resp}");
    }
    assert_eq!(
        srv.dc("iad")["utilisation"],
        0.6,
        "bad bodies changed nothing"
    );

    let (code, metrics) = srv.api_get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("boltz_temperature{zone=\"example.com.\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("boltz_dc_utilisation{zone=\"example.com.\",dc=\"iad\"} 0.6"),
        "{metrics}"
    );
    srv.query(&Q::new("www.example.com.", RecordType::A));
    let (_, metrics) = srv.api_get("/metrics");
    assert!(
        metrics.contains("boltz_queries_total{rcode=\"NOERROR\",qtype=\"A\"}"),
        "{metrics}"
    );
    crate::exposition::check_exposition("boltz serve /metrics", &metrics);
}

fn drain_all(srv: &Server) {
    for dc in ["fra", "iad", "sin"] {
        let (code, _) = srv.api_send(
            "POST",
            &format!("/v1/datacenters/{dc}/drain"),
            None,
            Some(TOKEN),
        );
        assert_eq!(code, 200);
    }
}

#[test]
fn all_down_serve_all() {
    let fx = Fixture::new(&zone_toml("all_down = \"serve-all\"", &[], ""));
    let srv = fx.serve();
    drain_all(&srv);
    let mut got = addrs(&europe(&srv));
    got.sort();
    assert_eq!(got, vec![FRA.to_string(), IAD.to_string(), SIN.to_string()]);
}

#[test]
fn all_down_servfail() {
    let fx = Fixture::new(&zone_toml("all_down = \"servfail\"", &[], ""));
    let srv = fx.serve();
    drain_all(&srv);
    assert_eq!(rcode(&europe(&srv)), ResponseCode::ServFail);
}

#[test]
fn all_down_fallback() {
    let fx = Fixture::new(&zone_toml(
        "all_down = { fallback = [\"192.0.2.99\", \"2001:db8::99\"] }",
        &[],
        "",
    ));
    let srv = fx.serve();
    drain_all(&srv);
    assert_eq!(addrs(&europe(&srv)), vec!["192.0.2.99".to_string()]);
    let r = srv.query(&Q::new("www.example.com.", RecordType::AAAA).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), vec!["2001:db8::99".to_string()]);
}

#[test]
fn explain_over_the_api_and_the_cli_agree() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let (code, body) = srv.api_get("/v1/explain?name=www.example.com&subnet=1.128.0.0/16");
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["drawn"][0], "sin");
    assert_eq!(e["scope"], 11);
    let out = std::process::Command::new(BOLTZ)
        .args([
            "explain",
            "www.example.com",
            "--subnet",
            "1.128.0.0/16",
            "--api",
        ])
        .arg(format!("http://{}", srv.api))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("drawn [sin]"), "{text}");
    let (code, body) = srv.api_get("/v1/explain?name=www.example.com");
    assert_eq!(code, 400);
    assert!(body.contains("client"), "{body}");
}
