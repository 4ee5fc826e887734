//! Tests of `/v1/site` over a real socket: what it serves parses with the
//! load-feed parser, 503 before the first report, 404 without a slot.

use std::sync::Arc;

use super::*;
use crate::control::Control;
use crate::load::FeedHealth;
use crate::metrics::Metrics;
use crate::zone::ZoneSet;

/// Serves the API with `site` on a loopback port; returns its base URL.
async fn serve(site: Option<Arc<SiteFeed>>) -> String {
    let text = r#"origin = "example.com."
soa = { mname = "ns1.example.com.", rname = "h.example.com.", serial = 1 }
ns = ["ns1.example.com."]
[datacenters.fra]
location = [50.11, 8.68]
ipv4 = ["192.0.2.10"]
"#;
    let zone = ZoneSet::parse_one(std::path::Path::new("example.com.toml"), text).unwrap();
    let state = ApiState {
        control: Control::new(ZoneSet::new(vec![zone]), false).unwrap(),
        geo: None,
        metrics: Arc::new(Metrics::default()),
        token: None,
        site,
        anycast: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, super::super::router(state)).await });
    format!("http://{addr}/v1/site")
}

async fn get(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn serves_the_report_as_a_load_feed() {
    let site = Arc::new(SiteFeed::new("fra"));
    let url = serve(Some(site.clone())).await;
    let (status, body) = get(&url).await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "no report yet");

    let report = FeedReport {
        capacity: Some(9000.0),
        health: Some(FeedHealth::Degraded),
        reason: Some("pool web: 1 of 2 backends healthy".into()),
        seq: Some(42),
        ..FeedReport::new(0.1 + 0.2)
    };
    site.set(report.clone());
    assert_eq!(site.datacenter(), "fra");
    assert_eq!(site.get().as_deref(), Some(&report));
    let (status, body) = get(&url).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["datacenter"], "fra");
    // Stamped with the time it was served, since the report has none.
    let parsed = FeedReport::parse(&body, None).unwrap();
    assert!(parsed.timestamp_unix_ms.is_some());
    assert_eq!(
        FeedReport {
            timestamp_unix_ms: None,
            ..parsed
        },
        report
    );

    // A report's own timestamp is kept.
    site.set(FeedReport {
        timestamp_unix_ms: Some(17),
        ..report.clone()
    });
    let (_, body) = get(&url).await;
    assert_eq!(
        FeedReport::parse(&body, None).unwrap().timestamp_unix_ms,
        Some(17)
    );
}

#[tokio::test]
async fn without_a_datacenter_there_is_no_site() {
    let url = serve(None).await;
    let (status, body) = get(&url).await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "this node runs no --datacenter");
}
