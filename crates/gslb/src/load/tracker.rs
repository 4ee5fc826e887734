//! Per-DC load state: smooths feed samples, notices when the feed has gone
//! quiet, and lets an operator pin a value. Pure: the caller passes `now`,
//! so staleness is tested without sleeping.

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::config::LoadConfig;

/// Where a [`LoadReading`] came from, in order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadSource {
    /// Set by an operator through the API.
    Override,
    /// Smoothed feed samples.
    Feed,
    /// A feed is configured but has no good sample within `stale_after`:
    /// the fallback is used.
    Stale,
    /// No feed is configured: the fallback is used.
    Static,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadReading {
    pub utilisation: f64,
    pub source: LoadSource,
}

#[derive(Clone, Copy, Debug, Error, PartialEq)]
#[error("utilisation must be a finite number ≥ 0, got {0}")]
pub struct InvalidUtilisation(pub f64);

#[derive(Clone, Debug)]
pub struct LoadTracker {
    has_feed: bool,
    smoothing: f64,
    stale_after: Duration,
    fallback: f64,
    ewma: Option<f64>,
    last_sample: Option<Instant>,
    last_error: Option<(String, Instant)>,
    override_value: Option<f64>,
}

impl LoadTracker {
    /// `None` is a DC without a `load` table: utilisation 0, no feed.
    pub fn new(cfg: Option<&LoadConfig>) -> Self {
        let mut tracker = LoadTracker {
            has_feed: false,
            smoothing: 1.0,
            stale_after: Duration::ZERO,
            fallback: 0.0,
            ewma: None,
            last_sample: None,
            last_error: None,
            override_value: None,
        };
        tracker.reconfigure(cfg);
        tracker
    }

    /// Applies a reloaded config while keeping the smoothed value and any
    /// override, so a zone reload does not reset what operators see.
    /// Parameters that skipped validation are clamped into range.
    pub fn reconfigure(&mut self, cfg: Option<&LoadConfig>) {
        let default = LoadConfig::default();
        let cfg = cfg.unwrap_or(&default);
        self.has_feed = cfg.url.is_some();
        self.smoothing = if cfg.smoothing > 0.0 && cfg.smoothing <= 1.0 {
            cfg.smoothing
        } else {
            1.0
        };
        self.stale_after = cfg.stale_after();
        self.fallback = valid(cfg.fallback).unwrap_or(0.0);
        if !self.has_feed {
            self.ewma = None;
            self.last_sample = None;
        }
    }

    /// Folds in one good sample. An invalid one is recorded as an error
    /// instead, since the feed already rejects those and anything reaching
    /// here is a caller bug that must not poison the average.
    pub fn observe(&mut self, sample: f64, now: Instant) {
        let Ok(sample) = valid(sample) else {
            self.observe_error(InvalidUtilisation(sample).to_string(), now);
            return;
        };
        // After a stale gap the old average describes another situation;
        // starting over reports the present at once.
        let fresh = !self.is_stale(now);
        self.ewma = Some(match self.ewma {
            Some(prev) if fresh => self.smoothing * sample + (1.0 - self.smoothing) * prev,
            _ => sample,
        });
        self.last_sample = Some(now);
        self.last_error = None;
    }

    /// Records a failed poll; the average is left alone and goes stale on its
    /// own if failures continue.
    pub fn observe_error(&mut self, err: String, now: Instant) {
        self.last_error = Some((err, now));
    }

    /// Pins the utilisation (`Some`) or returns to the feed (`None`).
    pub fn set_override(&mut self, value: Option<f64>) -> Result<(), InvalidUtilisation> {
        self.override_value = value.map(valid).transpose()?;
        Ok(())
    }

    #[cfg(test)]
    pub fn override_value(&self) -> Option<f64> {
        self.override_value
    }

    /// Error of the latest poll and when it happened; cleared by a good
    /// sample.
    #[cfg(test)]
    pub fn last_error(&self) -> Option<(&str, Instant)> {
        self.last_error.as_ref().map(|(e, at)| (e.as_str(), *at))
    }

    pub fn last_sample_age(&self, now: Instant) -> Option<Duration> {
        self.last_sample.map(|t| now.saturating_duration_since(t))
    }

    pub fn current(&self, now: Instant) -> LoadReading {
        let (utilisation, source) = match (self.override_value, self.ewma) {
            (Some(v), _) => (v, LoadSource::Override),
            _ if !self.has_feed => (self.fallback, LoadSource::Static),
            (None, Some(v)) if !self.is_stale(now) => (v, LoadSource::Feed),
            _ => (self.fallback, LoadSource::Stale),
        };
        LoadReading {
            utilisation,
            source,
        }
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.last_sample_age(now)
            .is_none_or(|age| age > self.stale_after)
    }
}

fn valid(v: f64) -> Result<f64, InvalidUtilisation> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(InvalidUtilisation(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_cfg() -> LoadConfig {
        LoadConfig {
            url: Some("http://127.0.0.1:9300/v1/load".to_owned()),
            stale_after: Some(Duration::from_secs(30)),
            smoothing: 0.3,
            fallback: 0.2,
            ..LoadConfig::default()
        }
    }

    fn reading(utilisation: f64, source: LoadSource) -> LoadReading {
        LoadReading {
            utilisation,
            source,
        }
    }

    fn close(a: LoadReading, b: LoadReading) -> bool {
        a.source == b.source && (a.utilisation - b.utilisation).abs() < 1e-9
    }

    #[test]
    fn static_without_feed() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&LoadConfig {
            fallback: 0.4,
            ..LoadConfig::default()
        }));
        assert_eq!(t.current(t0), reading(0.4, LoadSource::Static));
        // Stray samples for a feedless DC do not override its static value.
        t.observe(0.9, t0);
        assert_eq!(t.current(t0), reading(0.4, LoadSource::Static));
    }

    #[test]
    fn stale_until_first_sample() {
        let t0 = Instant::now();
        let t = LoadTracker::new(Some(&feed_cfg()));
        assert_eq!(t.current(t0), reading(0.2, LoadSource::Stale));
        assert_eq!(t.last_sample_age(t0), None);
    }

    #[test]
    fn first_sample_initialises_then_ewma() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&feed_cfg()));
        t.observe(0.5, t0);
        assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));
        t.observe(1.0, t0 + Duration::from_secs(5));
        let now = t0 + Duration::from_secs(5);
        assert!(close(t.current(now), reading(0.65, LoadSource::Feed)));
        t.observe(1.0, t0 + Duration::from_secs(10));
        let now = t0 + Duration::from_secs(10);
        assert!(close(t.current(now), reading(0.755, LoadSource::Feed)));
    }

    #[test]
    fn goes_stale_and_restarts_after_a_gap() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&feed_cfg()));
        t.observe(0.8, t0);
        let at_limit = t0 + Duration::from_secs(30);
        assert_eq!(t.current(at_limit), reading(0.8, LoadSource::Feed));
        let later = t0 + Duration::from_secs(31);
        assert_eq!(t.current(later), reading(0.2, LoadSource::Stale));
        assert_eq!(t.last_sample_age(later), Some(Duration::from_secs(31)));
        t.observe(0.1, later);
        assert_eq!(t.current(later), reading(0.1, LoadSource::Feed));
    }

    #[test]
    fn errors_are_kept_and_do_not_touch_the_average() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&feed_cfg()));
        t.observe(0.5, t0);
        let t1 = t0 + Duration::from_secs(5);
        t.observe_error("connect: connection refused".to_owned(), t1);
        assert_eq!(t.last_error(), Some(("connect: connection refused", t1)));
        assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));

        t.observe(f64::NAN, t1);
        assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));
        assert!(t.last_error().unwrap().0.contains("finite number"));
        t.observe(-1.0, t1);
        assert_eq!(t.current(t1), reading(0.5, LoadSource::Feed));

        t.observe(0.5, t1);
        assert_eq!(t.last_error(), None);
    }

    #[test]
    fn override_wins_until_cleared() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&feed_cfg()));
        t.observe(0.5, t0);
        t.set_override(Some(1.5)).unwrap();
        assert_eq!(t.current(t0), reading(1.5, LoadSource::Override));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(t.current(later), reading(1.5, LoadSource::Override));
        assert_eq!(t.override_value(), Some(1.5));

        assert_eq!(t.set_override(Some(-0.1)), Err(InvalidUtilisation(-0.1)));
        assert_eq!(t.override_value(), Some(1.5));
        assert!(t.set_override(Some(f64::INFINITY)).is_err());

        t.set_override(None).unwrap();
        assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));

        let mut s = LoadTracker::new(None);
        assert_eq!(s.current(t0), reading(0.0, LoadSource::Static));
        s.set_override(Some(0.9)).unwrap();
        assert_eq!(s.current(t0), reading(0.9, LoadSource::Override));
    }

    #[test]
    fn reconfigure_keeps_state() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&feed_cfg()));
        t.observe(0.5, t0);
        t.reconfigure(Some(&LoadConfig {
            smoothing: 1.0,
            ..feed_cfg()
        }));
        assert_eq!(t.current(t0), reading(0.5, LoadSource::Feed));
        t.observe(0.9, t0);
        assert_eq!(t.current(t0), reading(0.9, LoadSource::Feed));

        t.set_override(Some(0.3)).unwrap();
        t.reconfigure(None);
        assert_eq!(t.current(t0), reading(0.3, LoadSource::Override));
        t.set_override(None).unwrap();
        assert_eq!(t.current(t0), reading(0.0, LoadSource::Static));
    }

    #[test]
    fn out_of_range_config_is_clamped() {
        let t0 = Instant::now();
        let mut t = LoadTracker::new(Some(&LoadConfig {
            smoothing: f64::NAN,
            fallback: -3.0,
            ..feed_cfg()
        }));
        assert_eq!(t.current(t0), reading(0.0, LoadSource::Stale));
        t.observe(0.5, t0);
        t.observe(0.7, t0);
        assert_eq!(t.current(t0), reading(0.7, LoadSource::Feed));
    }

    #[test]
    fn serialises_lowercase() {
        let json = serde_json::to_string(&reading(0.5, LoadSource::Stale)).unwrap();
        assert_eq!(json, r#"{"utilisation":0.5,"source":"stale"}"#);
    }
}
