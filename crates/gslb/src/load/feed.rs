//! Polling one DC's load feed: [`fetch`] reads and checks one sample (see
//! the module docs of [`crate::load`] for the format), [`spawn`] polls on
//! the configured interval and hands each result to the caller.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::redirect::Policy;
use reqwest::{Client, Url};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::LoadConfig;
use boltz_core::clock::unix_ms;
use boltz_core::duration::format_duration;
use boltz_core::duration::MIN_POLL_INTERVAL;
use boltz_health::{describe, read_limited};

/// Largest response accepted; a load document is a few dozen bytes.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum LoadError {
    #[error("no load.url configured")]
    NoUrl,
    /// The config did not describe a usable feed (it skipped validation).
    #[error("config: {0}")]
    Config(String),
    #[error("connect: {0}")]
    Connect(String),
    #[error("request: {0}")]
    Request(String),
    #[error("status {0}")]
    Status(u16),
    #[error("timeout after {}", format_duration(*.0))]
    Timeout(Duration),
    #[error("body larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("`{field}` {reason}")]
    Field { field: &'static str, reason: String },
    #[error("neither `utilisation` nor `requests_per_second` present")]
    Missing,
}

/// One decoded load document.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub utilisation: f64,
    pub timestamp_unix_ms: Option<u64>,
}

/// A client suited to load feeds: no redirects (a feed that moved is a
/// config error to surface, not to follow) and no proxy from the
/// environment. Keep-alive is kept: unlike a health check, a poll gains
/// nothing from a fresh connection.
pub fn client() -> Result<Client, reqwest::Error> {
    Client::builder()
        .user_agent("boltz-load/0.1")
        .redirect(Policy::none())
        .no_proxy()
        .build()
}

/// Fetches one sample and returns the utilisation. `capacity` (requests per
/// second at utilisation 1) converts `requests_per_second` documents.
pub async fn fetch(
    client: &Client,
    cfg: &LoadConfig,
    capacity: Option<f64>,
) -> Result<f64, LoadError> {
    let url = cfg
        .feed_url()
        .ok_or(LoadError::NoUrl)?
        .map_err(LoadError::Config)?;
    let timeout = cfg.timeout();
    let body = tokio::time::timeout(timeout, get(client, url))
        .await
        .unwrap_or(Err(LoadError::Timeout(timeout)))?;
    let sample = parse(&body, capacity)?;
    if let (Some(ts), Some(now)) = (sample.timestamp_unix_ms, unix_ms()) {
        // Only age is checked: a timestamp slightly in the future is clock
        // skew between hosts, not a reason to drop the sample.
        let age = Duration::from_millis(now.saturating_sub(ts));
        if age > cfg.stale_after() {
            return Err(LoadError::Field {
                field: "timestamp_unix_ms",
                reason: format!(
                    "is {} old, beyond load.stale_after ({})",
                    // Whole seconds are precise enough and read better.
                    format_duration(if age.as_secs() > 0 {
                        Duration::from_secs(age.as_secs())
                    } else {
                        age
                    }),
                    format_duration(cfg.stale_after())
                ),
            });
        }
    }
    Ok(sample.utilisation)
}

async fn get(client: &Client, url: Url) -> Result<Vec<u8>, LoadError> {
    let mut response = client
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                LoadError::Connect(describe(&e))
            } else {
                LoadError::Request(describe(&e))
            }
        })?;
    if !response.status().is_success() {
        return Err(LoadError::Status(response.status().as_u16()));
    }
    match read_limited(&mut response, MAX_BODY).await {
        Ok((_, true)) => Err(LoadError::TooLarge),
        Ok((body, false)) => Ok(body),
        Err(e) => Err(LoadError::Request(describe(&e))),
    }
}

/// Decodes a load document. Unknown fields are ignored so that producers
/// can add fields without breaking older readers; a `null` counts as
/// absent for the same reason.
pub fn parse(body: &[u8], capacity: Option<f64>) -> Result<Sample, LoadError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| LoadError::Json(e.to_string()))?;
    let Value::Object(doc) = value else {
        return Err(LoadError::Json(format!(
            "expected an object, got {}",
            kind(&value)
        )));
    };
    let timestamp_unix_ms = match present(&doc, "timestamp_unix_ms") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| LoadError::Field {
            field: "timestamp_unix_ms",
            reason: format!("must be a non-negative integer, got {}", kind(v)),
        })?),
    };
    let utilisation = if let Some(v) = present(&doc, "utilisation") {
        number("utilisation", v)?
    } else if let Some(v) = present(&doc, "requests_per_second") {
        let rps = number("requests_per_second", v)?;
        let per_capacity = match capacity {
            Some(c) if c.is_finite() && c > 0.0 => rps / c,
            _ => {
                return Err(LoadError::Field {
                    field: "requests_per_second",
                    reason: "needs the DC's capacity, which is not configured".to_owned(),
                })
            }
        };
        if !per_capacity.is_finite() {
            return Err(LoadError::Field {
                field: "requests_per_second",
                reason: format!("{rps} is out of range for capacity {capacity:?}"),
            });
        }
        per_capacity
    } else {
        return Err(LoadError::Missing);
    };
    Ok(Sample {
        utilisation,
        timestamp_unix_ms,
    })
}

fn present<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    doc.get(key).filter(|v| !v.is_null())
}

fn number(field: &'static str, v: &Value) -> Result<f64, LoadError> {
    let n = v.as_f64().ok_or_else(|| LoadError::Field {
        field,
        reason: format!("must be a number, got {}", kind(v)),
    })?;
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(LoadError::Field {
            field,
            reason: format!("must be a finite number ≥ 0, got {n}"),
        })
    }
}

/// A value's JSON type, for messages that must not echo a large document.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Polls the feed every `interval` (from the start of one poll to the next,
/// the first at once) and publishes each result. Logs only when the feed
/// starts failing or recovers, so a dead feed costs one line, not one per
/// interval. Without a `url` there is nothing to poll and the task ends at
/// once. Abort the handle to stop it.
pub fn spawn(
    name: String,
    cfg: LoadConfig,
    capacity: Option<f64>,
    client: Client,
    publish: Arc<dyn Fn(Result<f64, String>) + Send + Sync>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if cfg.url.is_none() {
            tracing::debug!(dc = %name, "no load feed configured");
            return;
        }
        let mut failing = false;
        loop {
            let started = Instant::now();
            let result = fetch(&client, &cfg, capacity).await;
            match &result {
                Ok(utilisation) if failing => {
                    tracing::info!(dc = %name, utilisation, "load feed recovered");
                    failing = false;
                }
                Ok(_) => {}
                Err(error) if failing => {
                    tracing::debug!(dc = %name, %error, "load feed still failing");
                }
                Err(error) => {
                    tracing::warn!(dc = %name, %error, "load feed failing; using fallback once stale");
                    failing = true;
                }
            }
            publish(result.map_err(|e| e.to_string()));
            tokio::time::sleep_until(started + cfg.interval.max(MIN_POLL_INTERVAL)).await;
        }
    })
}

#[cfg(test)]
mod tests {
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
}
