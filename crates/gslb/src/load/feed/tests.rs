//! Tests of one DC's load feed against a local test server: the document
//! format, staleness, errors naming the field, and the poller.

use super::*;
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
    result
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
async fn fetch_checks_timestamp_age() {
    let now = unix_ms().unwrap();
    let fresh = format!(r#"{{"utilisation": 0.5, "timestamp_unix_ms": {now}}}"#);
    assert_eq!(fetch_from(200, &fresh, None).await, Ok(0.5));
    let future = format!(
        r#"{{"utilisation": 0.5, "timestamp_unix_ms": {}}}"#,
        now + 5000
    );
    assert_eq!(fetch_from(200, &future, None).await, Ok(0.5));

    let old = format!(
        r#"{{"utilisation": 0.5, "timestamp_unix_ms": {}}}"#,
        now - 45_000
    );
    let err = fetch_from(200, &old, None).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`timestamp_unix_ms` is 45s old"),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("beyond load.stale_after (300ms)"),
        "{err}"
    );
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

fn parse_err(body: &str) -> String {
    parse(body.as_bytes(), Some(100.0)).unwrap_err().to_string()
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
        parse(br#"{"requests_per_second": 5}"#, Some(0.0))
            .unwrap_err()
            .to_string(),
        "`requests_per_second` needs the DC's capacity, which is not configured"
    );
}

#[test]
fn parse_accepts_nulls_and_unknown_fields() {
    let sample = parse(
        br#"{"utilisation": null, "requests_per_second": 50, "timestamp_unix_ms": null, "v": 2}"#,
        Some(100.0),
    )
    .unwrap();
    assert_eq!(
        sample,
        Sample {
            utilisation: 0.5,
            timestamp_unix_ms: None
        }
    );
    let sample = parse(br#"{"utilisation": 2, "timestamp_unix_ms": 17}"#, None).unwrap();
    assert_eq!(sample.utilisation, 2.0);
    assert_eq!(sample.timestamp_unix_ms, Some(17));
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
    let publish = Arc::new(move |r: Result<f64, String>| {
        let _ = tx.send(r);
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
    let publish = Arc::new(|_: Result<f64, String>| panic!("nothing to publish"));
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
