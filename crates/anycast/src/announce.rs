//! Whether a prefix should be announced, from what boltz knows of itself:
//! the self-probe's results (one per second), the operator's drain and
//! the process's stop. Pure: the caller passes the time, the driver turns
//! the verdict into BIRD commands (and re-asserts it every second).
//!
//! - A prefix is announced only after `rise` good probes in a row, and
//!   withdrawn after `fall` bad ones in a row.
//! - Once withdrawn for ill health it stays withdrawn for at least
//!   `hold_down`, so a flapping server does not make the routers' flap
//!   damping suppress the prefix.
//! - Draining first announces the graceful-shutdown variant (RFC 8326: the
//!   routers prefer other sites), for `drain_window`, then withdraws.
//! - Stopping withdraws at once, whatever else holds.

use std::time::{Duration, Instant};

/// The rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Good probes in a row before announcing.
    pub rise: u32,
    /// Bad probes in a row before withdrawing.
    pub fall: u32,
    /// Least time withdrawn after ill health.
    pub hold_down: Duration,
    /// Time on the graceful-shutdown variant before a drain withdraws.
    pub drain_window: Duration,
}

/// What should be announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    /// The prefix, as usual.
    Announced,
    /// The graceful-shutdown variant (community 65535:0).
    Draining,
    /// Nothing.
    Withdrawn,
}

/// Why, for status, metrics and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// Not yet `rise` good probes since start.
    Starting,
    /// Answering correctly.
    Healthy,
    /// The probe failed `fall` times in a row (its last error).
    Failing(String),
    /// Healthy again, but withdrawn less than `hold_down` ago.
    HeldDown,
    /// Drained by the operator.
    Drained,
    /// The process is stopping.
    Stopping,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Starting => f.write_str("starting"),
            Why::Healthy => f.write_str("healthy"),
            Why::Failing(e) => write!(f, "failing: {e}"),
            Why::HeldDown => f.write_str("held-down"),
            Why::Drained => f.write_str("drained"),
            Why::Stopping => f.write_str("stopping"),
        }
    }
}

/// One prefix's announcement.
#[derive(Clone, Debug)]
pub struct Announcer {
    rules: Rules,
    want: Want,
    why: Why,
    since: Instant,
    good: u32,
    bad: u32,
    healthy: bool,
    /// When ill health last withdrew the prefix.
    withdrawn_at: Option<Instant>,
    /// When the drain began.
    drained_at: Option<Instant>,
    /// The last failed probe's error.
    last_error: String,
}

impl Announcer {
    /// A prefix not yet announced, at `now`.
    pub fn new(rules: Rules, now: Instant) -> Announcer {
        Announcer {
            rules,
            want: Want::Withdrawn,
            why: Why::Starting,
            since: now,
            good: 0,
            bad: 0,
            healthy: false,
            withdrawn_at: None,
            drained_at: None,
            last_error: String::new(),
        }
    }

    /// What is wanted, why, and since when.
    pub fn state(&self) -> (Want, &Why, Instant) {
        (self.want, &self.why, self.since)
    }

    /// One second's facts: the probe's result, the drain, the stop.
    /// Returns what should be announced now.
    pub fn observe(
        &mut self,
        now: Instant,
        probe: Result<(), String>,
        drained: bool,
        stopping: bool,
    ) -> Want {
        self.record(now, probe);
        self.decide(now, drained, stopping)
    }

    /// Counts one probe's result.
    fn record(&mut self, now: Instant, probe: Result<(), String>) {
        let was_healthy = self.healthy;
        match probe {
            Ok(()) => {
                self.good += 1;
                self.bad = 0;
                if self.good >= self.rules.rise {
                    self.healthy = true;
                }
            }
            Err(e) => {
                self.bad += 1;
                self.good = 0;
                if self.bad >= self.rules.fall {
                    self.healthy = false;
                }
                self.last_error = e;
            }
        }
        if was_healthy && !self.healthy {
            self.withdrawn_at = Some(now);
        }
    }

    /// What should be announced now, from the probes counted so far, the
    /// drain and the stop (also between probes: a drain, a stop, the end
    /// of the drain window act at once).
    pub fn decide(&mut self, now: Instant, drained: bool, stopping: bool) -> Want {
        if drained {
            self.drained_at.get_or_insert(now);
        } else {
            self.drained_at = None;
        }
        let held = self
            .withdrawn_at
            .is_some_and(|t| now.duration_since(t) < self.rules.hold_down);
        let failing = !self.healthy && self.bad >= self.rules.fall;
        let (want, why) = if stopping {
            (Want::Withdrawn, Why::Stopping)
        } else if failing {
            // Ill health wins over a drain: a broken server leaves now,
            // not at the end of the window.
            (Want::Withdrawn, Why::Failing(self.last_error.clone()))
        } else if let Some(t) = self.drained_at {
            let in_window = now.duration_since(t) < self.rules.drain_window;
            if in_window && self.want != Want::Withdrawn {
                (Want::Draining, Why::Drained)
            } else {
                (Want::Withdrawn, Why::Drained)
            }
        } else if !self.healthy {
            // Not yet `rise` good probes: starting, or still failing.
            let why = match &self.why {
                Why::Failing(_) | Why::Starting => self.why.clone(),
                _ => Why::Starting,
            };
            (Want::Withdrawn, why)
        } else if held {
            (Want::Withdrawn, Why::HeldDown)
        } else {
            (Want::Announced, Why::Healthy)
        };
        if want != self.want {
            self.since = now;
        }
        self.want = want;
        self.why = why;
        want
    }

    /// When the drain window of a draining prefix ends (the driver wakes
    /// then rather than at its next probe).
    pub fn drain_ends(&self) -> Option<Instant> {
        match (self.want, self.drained_at) {
            (Want::Draining, Some(t)) => Some(t + self.rules.drain_window),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
