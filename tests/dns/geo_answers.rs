//! Clients on three continents get their nearest DC when the system is cold,
//! located through ECS and through the resolver's own address; a DC held
//! above its target utilisation raises its price step by step, loses cells
//! in the proportion the computed probabilities say, without swinging back
//! and forth, and gets them back once its load drops.

use std::net::IpAddr;
use std::time::Duration;

use crate::harness::*;
use hickory_proto::rr::RecordType;

#[test]
fn nearest_dc_per_continent_via_ecs() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    for (subnet, want) in [
        ("81.2.69.0/24", FRA),
        ("89.160.20.0/24", FRA),
        ("67.43.156.0/24", IAD),
        ("216.160.83.0/24", IAD),
        ("1.128.0.0/16", SIN),
        ("14.1.0.0/16", SIN),
    ] {
        let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs(subnet));
        assert_eq!(addrs(&r), vec![want.to_string()], "client {subnet}");
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers[0].ttl, 30);
    }
    for (subnet, want) in [
        ("2a02:ec0::/48", "2001:db8:f::10"),
        ("2600:1700::/48", "2001:db8:a::10"),
        ("2400:cb00::/48", "2001:db8:c::10"),
    ] {
        let r = srv.query(&Q::new("www.example.com.", RecordType::AAAA).ecs(subnet));
        assert_eq!(addrs(&r), vec![want.to_string()], "client {subnet}");
    }
}

#[test]
fn nearest_dc_per_continent_via_resolver_address() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    for (resolver, want) in [("127.0.1.7", FRA), ("127.0.2.7", IAD), ("127.0.3.7", SIN)] {
        let ip: IpAddr = resolver.parse().unwrap();
        let r = udp_query(
            srv.dns,
            &Q::new("www.example.com.", RecordType::A),
            Some(ip),
        )
        .unwrap();
        assert_eq!(addrs(&r), vec![want.to_string()], "resolver {resolver}");
        // No ECS asked, none echoed.
        assert_eq!(ecs_of(&r), None);
    }
}

/// Cells all around Frankfurt, so that every one of them prefers fra when
/// the system is cold.
fn european_cells() -> (String, Vec<String>) {
    let mut csv = String::from("network,latitude,longitude,country,continent\n");
    let mut cells = Vec::new();
    for i in 0..200u32 {
        let lat = 47.0 + f64::from(i % 20) * 0.4;
        let lon = 3.0 + f64::from(i / 20) * 1.0;
        let net = format!("10.{}.{}.0/24", i / 256, i % 256);
        csv.push_str(&format!("{net},{lat},{lon},DE,EU\n"));
        cells.push(net);
    }
    (csv, cells)
}

fn fra_share(srv: &Server, cells: &[String]) -> f64 {
    let fra = cells
        .iter()
        .filter(|c| {
            addrs(&srv.query(&Q::new("www.example.com.", RecordType::A).ecs(c)))
                == vec![FRA.to_string()]
        })
        .count();
    fra as f64 / cells.len() as f64
}

fn fra_price(srv: &Server) -> f64 {
    srv.dc("fra")["price"].as_f64().unwrap()
}

#[test]
fn price_rises_under_load_sheds_cells_and_returns() {
    let steering = r#"temperature = 1.0
distance_scale_km = 2000
target_utilisation = 0.8
price_step = 0.25
price_max = 3.0
load_interval = "150ms"
demand_lag = 1"#;
    let zone = zone_toml(steering, &[], "").replace("temperature = \"auto\"\n", "");
    let (csv, cells) = european_cells();
    let fx = Fixture::with_geo(&zone, &csv);
    let srv = fx.serve();

    let cold = fra_share(&srv, &cells);
    assert!(cold > 0.85, "cold share of fra {cold}");
    assert_eq!(fra_price(&srv), 0.0);

    let (code, body) = srv.api_send(
        "PUT",
        "/v1/datacenters/fra/load",
        Some(r#"{"utilisation": 1.5}"#),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");

    // The price climbs by bounded steps and never falls while load is high.
    let mut seen = vec![0.0f64];
    srv.wait_for(
        "fra price to reach its maximum",
        Duration::from_secs(20),
        || {
            let p = fra_price(&srv);
            let last = *seen.last().unwrap();
            assert!(
                p + 1e-9 >= last,
                "price fell from {last} to {p} under constant load"
            );
            assert!(
                p - last <= 0.25 * 3.0 + 1e-9,
                "price jumped from {last} to {p}"
            );
            if p != last {
                seen.push(p);
            }
            p >= 3.0 - 1e-9
        },
    );
    assert!(
        seen.len() >= 4,
        "price should rise over several intervals: {seen:?}"
    );

    // The share now matches the probabilities the server computes.
    let hot = fra_share(&srv, &cells);
    let mut expected = 0.0;
    for c in &cells {
        let (code, body) = srv.api_get(&format!("/v1/explain?name=www.example.com&subnet={c}"));
        assert_eq!(code, 200, "{body}");
        let e: serde_json::Value = serde_json::from_str(&body).unwrap();
        let p = e["datacenters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["datacenter"] == "fra")
            .unwrap()["probability"]
            .as_f64()
            .unwrap();
        expected += p;
    }
    expected /= cells.len() as f64;
    assert!(
        hot < cold - 0.2,
        "fra should lose cells: cold {cold}, hot {hot}"
    );
    // 200 cells: binomial standard error ≤ 0.036; allow ~3 sigma.
    assert!(
        (hot - expected).abs() < 0.11,
        "measured {hot} vs computed {expected}"
    );

    // No swinging back and forth: the share stays put while load is held.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        let again = fra_share(&srv, &cells);
        assert!(
            (again - hot).abs() < 1e-9,
            "share moved from {hot} to {again} at constant price"
        );
    }

    // Load drops: the price decays to zero and the cells come back.
    let (code, _) = srv.api_send(
        "PUT",
        "/v1/datacenters/fra/load",
        Some(r#"{"utilisation": 0.1}"#),
        Some(TOKEN),
    );
    assert_eq!(code, 200);
    srv.wait_for("fra price back to 0", Duration::from_secs(20), || {
        fra_price(&srv) == 0.0
    });
    let back = fra_share(&srv, &cells);
    assert!(
        (back - cold).abs() < 1e-9,
        "cells should return: cold {cold}, after {back}"
    );
}

#[test]
fn clients_the_database_does_not_know_use_the_zone_fallback() {
    // A fixed default location in Asia.
    let fx = Fixture::new(&zone_toml("unknown_location = [35.0, 139.0]", &[], ""));
    let srv = fx.serve();
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("100.64.1.0/24"));
    assert_eq!(addrs(&r), vec![SIN.to_string()]);
    // The scope is the empty region of the database around the address: it
    // contains the address and is at least as specific as the database says.
    let (_, scope) = ecs_of(&r).unwrap();
    assert!(scope >= 2, "scope {scope}");

    // Weight-only: with one DC weighted far above the others, unknown
    // clients mostly land there, whatever the distance.
    let zone = zone_toml(
        "unknown_location = \"weight\"",
        &[("sin", "weight = 1000.0")],
        "",
    );
    let fx = Fixture::new(&zone);
    let srv = fx.serve();
    let mut sin = 0;
    for i in 0..40 {
        let r = srv.query(
            &Q::new("www.example.com.", RecordType::A).ecs(&format!("100.{}.0.0/16", 64 + i)),
        );
        sin += usize::from(addrs(&r) == vec![SIN.to_string()]);
    }
    assert!(sin >= 30, "weight-only choice should favour sin: {sin}/40");
}

#[test]
fn answers_n_returns_distinct_dcs_in_drawn_order() {
    let records =
        r#"api = { type = "steered", datacenters = ["fra", "iad", "sin"], ttl = 30, answers = 2 }"#;
    let fx = Fixture::new(&zone_toml("", &[], records));
    let srv = fx.serve();
    let r = srv.query(&Q::new("api.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    // Cold system: nearest first, then the next nearest.
    assert_eq!(addrs(&r), vec![FRA.to_string(), IAD.to_string()]);
    let r = srv.query(&Q::new("api.example.com.", RecordType::A).ecs("1.128.0.0/16"));
    assert_eq!(addrs(&r), vec![SIN.to_string(), FRA.to_string()]);
}
