//! The `load = { … }` table of a datacenter in a zone file: where its
//! utilisation feed is, how it is smoothed, and what to assume without it.
//! As with health, deserialising checks the shape and
//! [`LoadConfig::validate`] reports every semantic problem at once.

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use boltz_core::duration::{format_duration, serde_duration};
use boltz_health::parse_http_url;

/// One datacenter's load source, e.g.
/// `load = { url = "http://127.0.0.1:9300/v1/load", interval = "5s", smoothing = 0.3 }`,
/// or `load = { fallback = 0.4 }` for a DC without a feed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Feed to poll; without one the DC always reports `fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default = "default_interval", with = "serde_duration")]
    pub interval: Duration,
    /// Read through [`LoadConfig::timeout`], which supplies the default.
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Read through [`LoadConfig::stale_after`], which supplies the default.
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stale_after: Option<Duration>,
    /// EWMA weight of a new sample: 1 = no smoothing.
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// Utilisation assumed when there is no feed or it has gone stale.
    #[serde(default)]
    pub fallback: f64,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_smoothing() -> f64 {
    0.3
}

impl Default for LoadConfig {
    /// No feed, utilisation 0: what a DC without a `load` table gets.
    fn default() -> Self {
        LoadConfig {
            url: None,
            interval: default_interval(),
            timeout: None,
            stale_after: None,
            smoothing: default_smoothing(),
            fallback: 0.0,
        }
    }
}

impl LoadConfig {
    /// 2s, or half the interval when that is shorter, so that a short
    /// `interval` alone is a valid config.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| Duration::from_secs(2).min(self.interval / 2))
    }

    /// Six missed polls (30s at the default interval): long enough to ride
    /// out a restart of the agent, short enough that a dead feed does not
    /// steer for minutes.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
            .unwrap_or_else(|| self.interval.saturating_mul(6))
    }

    /// The parsed feed URL; `None` without a feed, `Err` for a URL that
    /// skipped validation.
    pub fn feed_url(&self) -> Option<Result<Url, String>> {
        self.url.as_deref().map(|u| parse_http_url("load.url", u))
    }

    /// Every problem with this config, each naming its field; empty when the
    /// config is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        errs.extend(self.feed_url().and_then(Result::err));
        if self.interval.is_zero() {
            errs.push("load.interval must be greater than 0".to_owned());
        } else {
            if self.timeout.is_some_and(|t| t.is_zero()) {
                errs.push("load.timeout must be greater than 0".to_owned());
            } else if self.timeout() >= self.interval {
                errs.push(format!(
                    "load.timeout ({}) must be shorter than load.interval ({})",
                    format_duration(self.timeout()),
                    format_duration(self.interval)
                ));
            }
            if self.stale_after() <= self.interval {
                errs.push(format!(
                    "load.stale_after ({}) must be longer than load.interval ({})",
                    format_duration(self.stale_after()),
                    format_duration(self.interval)
                ));
            }
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            errs.push(format!(
                "load.smoothing must be in (0, 1], got {}",
                self.smoothing
            ));
        }
        if !(self.fallback.is_finite() && self.fallback >= 0.0) {
            errs.push(format!(
                "load.fallback must be a finite number ≥ 0, got {}",
                self.fallback
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests;
