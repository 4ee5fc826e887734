//! The background tasks that feed a DC's state: its health probe and its
//! load feed, (re)started only when their configuration changed, and the
//! callbacks through which they report. A health change republishes the
//! [`World`](super::World) at once; a load sample waits for the price tick.

use std::sync::Arc;
use std::time::Instant;

use super::{Control, DcState, Key};
use crate::load::{self, LoadConfig};
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
                let publish: Arc<dyn Fn(Result<f64, String>) + Send + Sync> = Arc::new(move |r| {
                    if let Some(c) = me.upgrade() {
                        c.on_load(&k, r);
                    }
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

    fn on_load(&self, key: &Key, r: Result<f64, String>) {
        let mut inner = self.lock();
        if let Some(st) = inner.dcs.get_mut(key) {
            let now = Instant::now();
            match r {
                Ok(v) => {
                    st.load.observe(v, now);
                    st.fresh = true;
                }
                Err(e) => st.load.observe_error(e, now),
            }
        }
        // Utilisation reaches the snapshot at the next price tick, which is
        // the interval the operator chose for load to act.
    }
}
