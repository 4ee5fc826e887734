//! Per-DC load state: smooths feed samples, keeps what the feed says of the
//! DC's health and capacity while it is fresh, skips a report it has
//! already applied (`seq`), notices when the feed has gone quiet, and lets
//! an operator pin a value. Pure: the caller passes `now`, so staleness is
//! tested without sleeping.

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::config::LoadConfig;
use super::report::{FeedHealth, FeedReport};

/// How far below the last applied `seq` a report counts as a late answer
/// (ignored) rather than a producer that restarted its numbering.
const LATE: u64 = 16;

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

/// A DC's demand map: (latitude, longitude, rate) per cell.
pub type Demand = std::sync::Arc<[(f64, f64, f64)]>;

/// What the latest applied report said besides utilisation; forgotten
/// once the feed goes stale.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedFacts {
    /// Effective capacity (requests/s), replacing the declared one.
    pub capacity: Option<f64>,
    /// Where the DC's demand comes from (with a held sample: the map of
    /// the last one a price step settled).
    pub demand: Demand,
    pub health: Option<FeedHealth>,
    pub reason: Option<String>,
}

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
    facts: FeedFacts,
    /// `seq` of the newest report taken (folded or pending).
    last_seq: Option<u64>,
    /// Numbered, timestamped samples not yet in the average, oldest first:
    /// a price step folds in exactly those measured long enough before its
    /// boundary that every node has them ([`LoadTracker::settle`]).
    /// Each with the demand map its report carried (catch-ups from
    /// `recent` carry none): the map moves into the facts with its sample.
    pending: Vec<(u64, f64, Option<Demand>)>,
    /// How long before a step's boundary a sample must have been measured
    /// to be in that step: two polls of the feed.
    settle_margin: Duration,
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
            facts: FeedFacts::default(),
            last_seq: None,
            pending: Vec::new(),
            settle_margin: Duration::ZERO,
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
        self.settle_margin = cfg.interval * 2;
        self.fallback = valid(cfg.fallback).unwrap_or(0.0);
        if !self.has_feed {
            self.ewma = None;
            self.last_sample = None;
            self.facts = FeedFacts::default();
            self.last_seq = None;
            self.pending.clear();
        }
    }

    /// Applies one report of the feed: the path a polled document and a
    /// report handed over in-process share. Its health, reason and capacity
    /// apply at once. Its utilisation is folded into the average now if the
    /// report is unnumbered or undated (`Ok(true)`: a fresh reading), else
    /// held for the price step to [`settle`](LoadTracker::settle)
    /// (`Ok(false)`, as for a repeated `seq`: so a node polling twice per
    /// producer interval takes the same EWMA steps as one polling once).
    /// Or why it was rejected (also kept as the last error): too old, a
    /// value out of range, or a DC without a feed.
    pub fn observe_report(
        &mut self,
        report: &FeedReport,
        now: Instant,
        now_unix_ms: Option<u64>,
    ) -> Result<bool, String> {
        let checked = if self.has_feed {
            report
                .check(self.stale_after, now_unix_ms)
                .map_err(|e| e.to_string())
        } else {
            Err("the DC has no load feed (`load.url`) to report to".to_owned())
        };
        if let Err(e) = checked {
            self.observe_error(e.clone(), now);
            return Err(e);
        }
        if let (Some(seq), Some(last)) = (report.seq, self.last_seq) {
            if seq <= last && last - seq <= LATE {
                // Seen, or a little older (a late answer): no sample. Far
                // below is a producer that restarted its numbering.
                self.last_error = None;
                return Ok(false);
            }
        }
        let demand: Demand = report.demand.clone().into();
        let held = report.seq.is_some() && report.timestamp_unix_ms.is_some();
        self.facts = FeedFacts {
            capacity: report.capacity,
            // A held sample's map waits with it, so every node's step (and
            // every DC's map in it) describes the same measurement.
            demand: if held {
                self.facts.demand.clone()
            } else {
                demand.clone()
            },
            health: report.health,
            reason: report.reason.clone(),
        };
        // Samples missed since the newest taken, from `recent`, in order.
        let newest = self.last_seq;
        let missed: Vec<f64> = report
            .recent
            .iter()
            .filter(|(s, _)| newest.is_some_and(|l| *s > l) && report.seq.is_some_and(|q| *s < q))
            .map(|(_, u)| *u)
            .collect();
        let (Some(seq), Some(ts)) = (report.seq, report.timestamp_unix_ms) else {
            // Unnumbered or undated: a sample now, as feeds always were.
            for u in missed {
                self.observe(u, now);
            }
            self.observe(report.utilisation, now);
            self.last_seq = report.seq;
            return Ok(true);
        };
        // Numbered and dated: held until a price step settles it.
        self.pending
            .extend(missed.into_iter().map(|u| (ts, u, None)));
        self.pending.push((ts, report.utilisation, Some(demand)));
        self.last_seq = Some(seq);
        self.last_sample = Some(now);
        self.last_error = None;
        Ok(false)
    }

    /// Folds into the average, in order, the held samples measured at
    /// least the settle margin (two polls) before `boundary_unix_ms`, a
    /// price step's wall-clock boundary: every node polling this feed has
    /// them by then, so every node's step sees the same average. Returns
    /// whether any was folded (a fresh reading for the step).
    pub fn settle(&mut self, boundary_unix_ms: u64, now: Instant) -> bool {
        let upto = boundary_unix_ms.saturating_sub(self.settle_margin.as_millis() as u64);
        let n = self
            .pending
            .iter()
            .take_while(|(ts, _, _)| *ts <= upto)
            .count();
        let folded: Vec<(u64, f64, Option<Demand>)> = self.pending.drain(..n).collect();
        let stamp = self.last_sample;
        for (_, u, map) in &folded {
            self.observe(*u, now);
            if let Some(m) = map {
                self.facts.demand = m.clone();
            }
        }
        // Folding is not hearing from the feed: its age stays the poll's.
        if !folded.is_empty() {
            self.last_sample = stamp.or(self.last_sample);
        }
        !folded.is_empty()
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

    /// The latest report's health, reason and capacity while the feed is
    /// fresh; `None` without a feed or once it is stale (the probe alone
    /// decides, the declared capacity applies).
    pub fn facts(&self, now: Instant) -> Option<&FeedFacts> {
        (self.has_feed && !self.is_stale(now)).then_some(&self.facts)
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
mod tests;
