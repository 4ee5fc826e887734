//! Polling one DC's load feed: [`fetch`] reads and decodes one
//! [`FeedReport`] (see the module docs of [`crate::load`] for the format),
//! [`spawn`] polls on the configured interval and hands each result to the
//! caller, which applies it (and may still reject it, e.g. for its age).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::redirect::Policy;
use reqwest::{Client, Url};
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::LoadConfig;
use super::report::{FeedReport, ReportError};
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
    #[error(transparent)]
    Report(#[from] ReportError),
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

/// Fetches and decodes one document. `capacity` (the DC's declared
/// requests per second at utilisation 1) converts `requests_per_second`
/// documents that bring no `capacity` of their own. Its age is checked
/// where it is applied ([`crate::load::LoadTracker::observe_report`]), the
/// one path a polled sample and a local report share.
pub async fn fetch(
    client: &Client,
    cfg: &LoadConfig,
    capacity: Option<f64>,
) -> Result<FeedReport, LoadError> {
    let url = cfg
        .feed_url()
        .ok_or(LoadError::NoUrl)?
        .map_err(LoadError::Config)?;
    let timeout = cfg.timeout();
    let body = tokio::time::timeout(timeout, get(client, url))
        .await
        .unwrap_or(Err(LoadError::Timeout(timeout)))?;
    Ok(FeedReport::parse(&body, capacity)?)
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

/// What the poller hands each result to; it answers whether the report
/// was usable (a report may still be rejected where it is applied).
pub type Publish = Arc<dyn Fn(Result<FeedReport, String>) -> Result<(), String> + Send + Sync>;

/// Polls the feed every `interval` (from the start of one poll to the next,
/// the first at once) and publishes each result; `publish` answers whether
/// the report was usable. Logs only when the feed starts failing (a failed
/// poll or a rejected report) or recovers, so a dead feed costs one line,
/// not one per interval. Without a `url` there is nothing to poll and the
/// task ends at once. Abort the handle to stop it.
pub fn spawn(
    name: String,
    cfg: LoadConfig,
    capacity: Option<f64>,
    client: Client,
    publish: Publish,
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
            let utilisation = result.as_ref().ok().map(|r| r.utilisation);
            match publish(result.map_err(|e| e.to_string())) {
                Ok(()) if failing => {
                    tracing::info!(dc = %name, utilisation, "load feed recovered");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) if failing => {
                    tracing::debug!(dc = %name, %error, "load feed still failing");
                }
                Err(error) => {
                    tracing::warn!(dc = %name, %error, "load feed failing; using fallback once stale");
                    failing = true;
                }
            }
            tokio::time::sleep_until(started + cfg.interval.max(MIN_POLL_INTERVAL)).await;
        }
    })
}

#[cfg(test)]
mod tests;
