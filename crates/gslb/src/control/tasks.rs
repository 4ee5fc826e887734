//! The background tasks that feed a DC's state: its health probe and its
//! load feed, (re)started only when their configuration changed, and the
//! callbacks through which they report. A polled feed document and a
//! report handed over in-process ([`Control::apply_report`], what
//! `boltz serve --datacenter` does with its own DC's report) take one path
//! into the state. A change of health (the probe's, or the feed's word)
//! republishes the [`World`](super::World) at once; a load sample polled
//! waits for the price tick.

use std::sync::Arc;
use std::time::Instant;

use super::{Control, ControlError, DcState, Key};
use crate::load::{self, FeedReport, LoadConfig};
use boltz_core::clock::unix_ms;
use boltz_health::{HealthConfig, HealthStatus};

impl Control {
    /// Starts, restarts or stops the DC's health probe and load feed so they
    /// match its configuration; a task whose configuration did not change
    /// keeps running.
    pub(super) fn ensure_tasks(
        &self,
        key: &Key,
        st: &mut DcState,
        hc: Option<&HealthConfig>,
        lc: Option<&LoadConfig>,
        capacity: f64,
    ) {
        if !self.run_tasks {
            return;
        }
        self.ensure_health_task(key, st, hc);
        self.ensure_load_task(key, st, lc, capacity);
    }

    fn ensure_health_task(&self, key: &Key, st: &mut DcState, hc: Option<&HealthConfig>) {
        let same_health = match (&st.health_task, hc) {
            (Some((old, _)), Some(new)) => old == new,
            (None, None) => true,
            _ => false,
        };
        if !same_health {
            if let Some((_, h)) = st.health_task.take() {
                h.abort();
            }
            match hc {
                Some(cfg) => {
                    let me = self.me.clone();
                    let k = key.clone();
                    let publish: Arc<dyn Fn(HealthStatus) + Send + Sync> = Arc::new(move |s| {
                        if let Some(c) = me.upgrade() {
                            c.on_health(&k, s);
                        }
                    });
                    let name = format!("{}/{}", key.0, key.1);
                    let h = boltz_health::spawn(name, cfg.clone(), self.prober.clone(), publish);
                    st.health_task = Some((cfg.clone(), h));
                }
                // No check configured: the DC is up by declaration.
                None => st.health = HealthStatus::default(),
            }
        }
    }

    fn ensure_load_task(
        &self,
        key: &Key,
        st: &mut DcState,
        lc: Option<&LoadConfig>,
        capacity: f64,
    ) {
        let same_load = match (&st.load_task, lc) {
            (Some((old, cap, _)), Some(new)) => old == new && *cap == capacity,
            (None, Some(new)) => new.url.is_none(),
            (None, None) => true,
            _ => false,
        };
        if !same_load {
            if let Some((_, _, h)) = st.load_task.take() {
                h.abort();
            }
            if let Some(cfg) = lc.filter(|c| c.url.is_some()) {
                let me = self.me.clone();
                let k = key.clone();
                let publish: load::Publish = Arc::new(move |r| match me.upgrade() {
                    Some(c) => c.on_load(&k, r),
                    None => Ok(()),
                });
                let name = format!("{}/{}", key.0, key.1);
                let h = load::spawn(
                    name,
                    cfg.clone(),
                    Some(capacity),
                    self.http.clone(),
                    publish,
                );
                st.load_task = Some((cfg.clone(), capacity, h));
            }
        }
    }

    fn on_health(&self, key: &Key, status: HealthStatus) {
        let mut inner = self.lock();
        if let Some(st) = inner.dcs.get_mut(key) {
            let changed = st.health.state != status.state;
            st.health = status;
            if changed {
                self.publish(&mut inner);
            }
        }
    }

    /// A polled feed's result: a report goes the way of
    /// [`apply_report`](Control::apply_report), an error is kept. Answers
    /// whether the report was usable, for the poller's log.
    fn on_load(&self, key: &Key, r: Result<FeedReport, String>) -> Result<(), String> {
        let mut inner = self.lock();
        let Some(st) = inner.dcs.get_mut(key) else {
            return Ok(());
        };
        let now = Instant::now();
        let health_changed = match r {
            Ok(report) => observe_report(st, &report, now)?,
            Err(e) => {
                st.load.observe_error(e.clone(), now);
                return Err(e);
            }
        };
        // Utilisation reaches the snapshot at the next price tick, which is
        // the interval the operator chose for load to act; the feed's word
        // on health acts at once, as a probe's does.
        if health_changed {
            self.publish(&mut inner);
        }
        Ok(())
    }

    /// Applies `report` to the DC named `dc` in every zone that has it (or
    /// in one) exactly as a polled sample of its feed: the same checks
    /// (age against `load.stale_after`, values), `seq` dedup, EWMA,
    /// freshness, health and capacity; marks the reading fresh for the
    /// price step and publishes. Returns how many zones have the DC; a
    /// report rejected in any of them (e.g. a DC without `load.url`) is
    /// an error, after the zones that took it were updated.
    pub fn apply_report(
        &self,
        dc: &str,
        zone: Option<&str>,
        report: FeedReport,
    ) -> Result<usize, ControlError> {
        self.apply_report_at(dc, zone, report, Instant::now())
    }

    /// [`apply_report`](Control::apply_report) at `now`: for an offline
    /// driver on a clock of its own (`boltz simulate`), as
    /// [`tick`](Control::tick) is.
    pub fn apply_report_at(
        &self,
        dc: &str,
        zone: Option<&str>,
        report: FeedReport,
        now: Instant,
    ) -> Result<usize, ControlError> {
        let mut inner = self.lock();
        let keys = Self::keys_for(&inner, dc, zone)?;
        let mut rejected = None;
        for k in &keys {
            if let Some(st) = inner.dcs.get_mut(k) {
                if let Err(e) = observe_report(st, &report, now) {
                    rejected.get_or_insert(e);
                }
            }
        }
        self.publish(&mut inner);
        match rejected {
            Some(e) => Err(ControlError::Report(e)),
            None => Ok(keys.len()),
        }
    }
}

/// The one path of a report into a DC's state. Returns whether the feed's
/// word on the DC's health changed (which publishes at once).
fn observe_report(st: &mut DcState, report: &FeedReport, now: Instant) -> Result<bool, String> {
    let before = st.feed_health(now);
    if st.load.observe_report(report, now, unix_ms())? {
        st.fresh = true;
    }
    Ok(st.feed_health(now) != before)
}

#[cfg(test)]
mod tests;
