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
mod tests;
