//! Tests of one DC's load feed against a local test server: fetching and
//! decoding, transport errors, and the poller. The document itself is
//! tested in `report/tests.rs`.

use super::*;
use crate::load::report::FeedHealth;
use boltz_health::test_server::{closed_port, TestServer};
use tokio::sync::mpsc;

fn cfg(url: String) -> LoadConfig {
    LoadConfig {
        url: Some(url),
        interval: Duration::from_millis(50),
        ..LoadConfig::default()
    }
}

async fn fetch_from(status: u16, body: &str, capacity: Option<f64>) -> Result<f64, LoadError> {
    let server = TestServer::respond(status, body).await;
    let result = fetch(&client().unwrap(), &cfg(server.url("/v1/load")), capacity).await;
    assert_eq!(server.header("accept"), ["application/json"]);
    server.stop().await;
    result.map(|r| r.utilisation)
}

#[tokio::test]
async fn fetch_utilisation() {
    let body = r#"{"utilisation": 0.42, "future_field": {"x": 1}}"#;
    assert_eq!(fetch_from(200, body, None).await, Ok(0.42));
}

#[tokio::test]
async fn fetch_requests_per_second_over_capacity() {
    let body = r#"{"requests_per_second": 1500}"#;
    assert_eq!(fetch_from(200, body, Some(1000.0)).await, Ok(1.5));
    assert_eq!(
        fetch_from(200, body, None).await.unwrap_err().to_string(),
        "`requests_per_second` needs the DC's capacity, which is not configured"
    );
}

#[tokio::test]
async fn utilisation_wins_over_requests_per_second() {
    let body = r#"{"utilisation": 0.3, "requests_per_second": 900}"#;
    assert_eq!(fetch_from(200, body, Some(1000.0)).await, Ok(0.3));
}

#[tokio::test]
async fn fetch_http_and_json_errors() {
    assert_eq!(
        fetch_from(503, "{}", None).await,
        Err(LoadError::Status(503))
    );
    let err = fetch_from(200, "<html>busy</html>", None)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid JSON: "), "{err}");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY));
    assert_eq!(fetch_from(200, &big, None).await, Err(LoadError::TooLarge));
}

#[tokio::test]
async fn fetch_reads_the_whole_report() {
    let server = TestServer::respond(
        200,
        r#"{"utilisation": 0.5, "capacity": 9000, "health": "down", "reason": "x", "seq": 7}"#,
    )
    .await;
    let report = fetch(&client().unwrap(), &cfg(server.url("/v1/site")), None)
        .await
        .unwrap();
    server.stop().await;
    assert_eq!(report.health, Some(FeedHealth::Down));
    assert_eq!(report.capacity, Some(9000.0));
    assert_eq!(report.reason.as_deref(), Some("x"));
    assert_eq!(report.seq, Some(7));
}

#[tokio::test]
async fn fetch_refused_timeout_and_no_url() {
    let addr = closed_port().await;
    let err = fetch(&client().unwrap(), &cfg(format!("http://{addr}/")), None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connect: connection refused");

    let server = TestServer::hang().await;
    let mut c = cfg(server.url("/"));
    c.timeout = Some(Duration::from_millis(100));
    let err = fetch(&client().unwrap(), &c, None).await.unwrap_err();
    assert_eq!(err.to_string(), "timeout after 100ms");
    server.stop().await;

    let err = fetch(&client().unwrap(), &LoadConfig::default(), None).await;
    assert_eq!(err, Err(LoadError::NoUrl));
    let err = fetch(&client().unwrap(), &cfg("nope".to_owned()), None).await;
    assert!(matches!(err, Err(LoadError::Config(_))), "{err:?}");
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Result<f64, String>>) -> Result<f64, String> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing published within 10s")
        .expect("poller stopped")
}

#[tokio::test]
async fn spawn_publishes_each_poll() {
    let server = TestServer::respond(200, r#"{"utilisation": 0.25}"#).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let publish: Publish = Arc::new(move |r: Result<FeedReport, String>| {
        let _ = tx.send(r.map(|r| r.utilisation));
        Ok(())
    });
    let handle = spawn(
        "dc1".to_owned(),
        cfg(server.url("/v1/load")),
        None,
        client().unwrap(),
        publish,
    );
    assert_eq!(next(&mut rx).await, Ok(0.25));
    assert_eq!(next(&mut rx).await, Ok(0.25));
    server.stop().await;
    loop {
        match next(&mut rx).await {
            Ok(v) => assert_eq!(v, 0.25),
            Err(e) => {
                assert!(
                    e.starts_with("connect: ") || e.starts_with("request: "),
                    "{e}"
                );
                break;
            }
        }
    }
    handle.abort();
}

#[tokio::test]
async fn spawn_without_url_ends() {
    let publish: Publish = Arc::new(|_| panic!("nothing to publish"));
    let handle = spawn(
        "dc1".to_owned(),
        LoadConfig::default(),
        None,
        client().unwrap(),
        publish,
    );
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("task did not end")
        .unwrap();
}
