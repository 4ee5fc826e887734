//! Control: the one place that owns mutable runtime state — each DC's
//! health, drain flag, load tracker and price — and the background tasks
//! that feed it (health probes, load feeds, the price ticker). Every change
//! republishes an immutable [`World`] through `arc-swap`; the query path only
//! ever loads that snapshot, so it never waits on a task holding a lock.
//!
//! State is keyed by (zone origin, DC name), so a zone reload keeps the
//! health, drain and price of every DC that still exists, and restarts its
//! probes only when their configuration changed.

pub mod decide;
pub mod decision_cache;
pub mod explain;
pub mod placement;
pub mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use decide::{decide, Family, Mode};
pub use decision_cache::steer_client;
pub use explain::{explain, Explanation};
pub use placement::Placement;
pub use world::{DcCounters, DcStatus, DcView, World, ZoneView};

use crate::load::{self, LoadConfig, LoadTracker};
use crate::steer::update_price;
use crate::zone::ZoneSet;
use boltz_health::{HealthConfig, HealthStatus, Prober};

type Key = (String, String);

/// Whether `views` over `zones` say exactly what `w` already says.
fn same_state(w: &World, zones: &Arc<ZoneSet>, views: &[ZoneView]) -> bool {
    Arc::ptr_eq(&w.zones, zones)
        && w.views.len() == views.len()
        && w.views.iter().zip(views).all(|(a, b)| {
            a.temperature == b.temperature
                && a.dcs.len() == b.dcs.len()
                && a.dcs.iter().zip(&b.dcs).all(|(x, y)| {
                    x.health == y.health
                        && x.drained == y.drained
                        && x.utilisation == y.utilisation
                        && x.load_source == y.load_source
                        && x.mu == y.mu
                })
        })
}

struct DcState {
    health: HealthStatus,
    drained: bool,
    load: LoadTracker,
    mu: f64,
    counters: Arc<DcCounters>,
    health_task: Option<(HealthConfig, JoinHandle<()>)>,
    load_task: Option<(LoadConfig, f64, JoinHandle<()>)>,
}

impl Drop for DcState {
    fn drop(&mut self) {
        if let Some((_, h)) = self.health_task.take() {
            h.abort();
        }
        if let Some((_, _, h)) = self.load_task.take() {
            h.abort();
        }
    }
}

struct Inner {
    zones: Arc<ZoneSet>,
    dcs: HashMap<Key, DcState>,
    last_price_update: HashMap<String, Instant>,
}

/// Runtime state and the published snapshot.
pub struct Control {
    inner: Mutex<Inner>,
    world: ArcSwap<World>,
    prober: Arc<Prober>,
    http: reqwest::Client,
    me: Weak<Control>,
    /// Spawn probes and feeds (false for offline use and tests of pure state).
    run_tasks: bool,
}

/// Error of an operator action on a DC.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no datacenter `{0}` in any zone")]
    NoSuchDatacenter(String),
    #[error("no zone `{0}`")]
    NoSuchZone(String),
    #[error("utilisation: {0}")]
    InvalidUtilisation(String),
    #[error("cannot build the HTTP client for probes: {0}")]
    Http(String),
}

fn fallback_of(cfg: Option<&LoadConfig>) -> f64 {
    cfg.map_or(0.0, |l| l.fallback)
}

impl Control {
    /// Creates the control plane for `zones`. With `run_tasks`, health
    /// probes and load feeds start at once (needs a tokio runtime).
    pub fn new(zones: ZoneSet, run_tasks: bool) -> Result<Arc<Control>, ControlError> {
        let zones = Arc::new(zones);
        let prober = Prober::new().map_err(|e| ControlError::Http(e.to_string()))?;
        // The load feeds' client: no redirects, no proxy from the
        // environment (each poll has its own timeout).
        let http = load::client().map_err(|e| ControlError::Http(e.to_string()))?;
        let c = Arc::new_cyclic(|me| Control {
            inner: Mutex::new(Inner {
                zones: zones.clone(),
                dcs: HashMap::new(),
                last_price_update: HashMap::new(),
            }),
            world: ArcSwap::from_pointee(World::cold(zones.clone())),
            prober: Arc::new(prober),
            http,
            me: me.clone(),
            run_tasks,
        });
        c.apply_zones(zones);
        Ok(c)
    }

    /// The current snapshot.
    pub fn world(&self) -> arc_swap::Guard<Arc<World>> {
        self.world.load()
    }

    /// The current snapshot as an owned `Arc` (for work that outlives a query).
    pub fn world_full(&self) -> Arc<World> {
        self.world.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in another holder cannot leave the maps half-updated in a
        // way that matters more than stopping DNS would; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a new zone set, keeping the state of DCs that still exist.
    pub fn apply_zones(&self, zones: Arc<ZoneSet>) {
        let mut inner = self.lock();
        let mut old = std::mem::take(&mut inner.dcs);
        for zone in &zones.zones {
            let zname = zone.origin_str();
            for dc in &zone.datacenters {
                let key = (zname.clone(), dc.name.clone());
                let mut st = old.remove(&key).unwrap_or_else(|| DcState {
                    health: HealthStatus::default(),
                    drained: false,
                    load: LoadTracker::new(dc.load.as_ref()),
                    mu: 0.0,
                    counters: Arc::default(),
                    health_task: None,
                    load_task: None,
                });
                st.load.reconfigure(dc.load.as_ref());
                self.ensure_tasks(
                    &key,
                    &mut st,
                    dc.health.as_ref(),
                    dc.load.as_ref(),
                    dc.capacity,
                );
                inner.dcs.insert(key, st);
            }
        }
        // DCs that disappeared: dropping their state aborts their tasks.
        drop(old);
        inner.zones = zones;
        self.publish(&inner);
    }

    fn ensure_tasks(
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
                self.publish(&inner);
            }
        }
    }

    fn on_load(&self, key: &Key, r: Result<f64, String>) {
        let mut inner = self.lock();
        if let Some(st) = inner.dcs.get_mut(key) {
            let now = Instant::now();
            match r {
                Ok(v) => st.load.observe(v, now),
                Err(e) => st.load.observe_error(e, now),
            }
        }
        // Utilisation reaches the snapshot at the next price tick, which is
        // the interval the operator chose for load to act.
    }

    /// One step of the price loop for every zone whose load interval has
    /// elapsed. Called from a ticker; `now` is passed for tests.
    /// Returns when the next zone is due.
    pub fn tick(&self, now: Instant) -> Instant {
        let mut inner = self.lock();
        let zones = inner.zones.clone();
        let mut changed = false;
        let mut next = now + Duration::from_secs(1);
        for zone in &zones.zones {
            let zname = zone.origin_str();
            let interval = zone.steering.load_interval;
            match inner.last_price_update.get(&zname) {
                Some(t) if now.duration_since(*t) < interval => {
                    next = next.min(*t + interval);
                    continue;
                }
                _ => next = next.min(now + interval),
            }
            inner.last_price_update.insert(zname.clone(), now);
            for dc in &zone.datacenters {
                if let Some(st) = inner.dcs.get_mut(&(zname.clone(), dc.name.clone())) {
                    let rho = st.load.current(now).utilisation;
                    let mu = update_price(st.mu, rho, &zone.steering.price);
                    if mu != st.mu {
                        if (mu > 0.0) != (st.mu > 0.0) {
                            info!(zone = %zname, dc = %dc.name, mu, utilisation = rho, "price {}", if mu > 0.0 { "raised" } else { "back to zero" });
                        }
                        st.mu = mu;
                    }
                }
            }
            changed = true;
        }
        if changed {
            self.publish(&inner);
        }
        next
    }

    /// Runs the price ticker forever. It sleeps until the next zone is due
    /// (at most a second, so zones added by a reload start promptly) rather
    /// than polling: every wake-up can preempt a DNS worker on its core.
    pub async fn run_ticker(self: Arc<Self>) {
        loop {
            let next = self.tick(Instant::now());
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        }
    }

    /// Keys of DCs named `dc`, optionally limited to one zone.
    fn keys_for(inner: &Inner, dc: &str, zone: Option<&str>) -> Result<Vec<Key>, ControlError> {
        let zone = match zone {
            Some(z) => {
                let zs = inner
                    .zones
                    .by_origin(z)
                    .ok_or_else(|| ControlError::NoSuchZone(z.to_string()))?;
                Some(zs.origin_str())
            }
            None => None,
        };
        let keys: Vec<Key> = inner
            .dcs
            .keys()
            .filter(|(z, d)| d == dc && zone.as_ref().is_none_or(|want| want == z))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Err(ControlError::NoSuchDatacenter(dc.to_string()));
        }
        Ok(keys)
    }

    /// Drains (or undrains) a DC in every zone, or in one.
    pub fn set_drain(
        &self,
        dc: &str,
        zone: Option<&str>,
        drained: bool,
    ) -> Result<usize, ControlError> {
        let mut inner = self.lock();
        let keys = Self::keys_for(&inner, dc, zone)?;
        for k in &keys {
            if let Some(st) = inner.dcs.get_mut(k) {
                if st.drained != drained {
                    warn!(zone = %k.0, dc = %k.1, drained, "admin drain changed");
                }
                st.drained = drained;
            }
        }
        self.publish(&inner);
        Ok(keys.len())
    }

    /// Sets (Some) or clears (None) an operator override of a DC's
    /// utilisation. It acts through the price at the next load interval.
    pub fn set_load(
        &self,
        dc: &str,
        zone: Option<&str>,
        utilisation: Option<f64>,
    ) -> Result<usize, ControlError> {
        let mut inner = self.lock();
        let keys = Self::keys_for(&inner, dc, zone)?;
        for k in &keys {
            if let Some(st) = inner.dcs.get_mut(k) {
                st.load
                    .set_override(utilisation)
                    .map_err(|e| ControlError::InvalidUtilisation(e.to_string()))?;
                info!(zone = %k.0, dc = %k.1, ?utilisation, "load override");
            }
        }
        self.publish(&inner);
        Ok(keys.len())
    }

    /// Health details of every DC (for the status API).
    pub fn health_of(&self) -> HashMap<Key, HealthStatus> {
        let inner = self.lock();
        inner
            .dcs
            .iter()
            .map(|(k, v)| (k.clone(), v.health.clone()))
            .collect()
    }

    fn publish(&self, inner: &Inner) {
        let now = Instant::now();
        let views: Vec<ZoneView> = inner
            .zones
            .zones
            .iter()
            .map(|zone| {
                let zname = zone.origin_str();
                let dcs = zone
                    .datacenters
                    .iter()
                    .map(
                        |dc| match inner.dcs.get(&(zname.clone(), dc.name.clone())) {
                            Some(st) => {
                                let reading = st.load.current(now);
                                DcView {
                                    health: st.health.state,
                                    drained: st.drained,
                                    utilisation: reading.utilisation,
                                    load_source: reading.source,
                                    mu: st.mu,
                                    counters: st.counters.clone(),
                                }
                            }
                            None => DcView::cold(fallback_of(dc.load.as_ref())),
                        },
                    )
                    .collect();
                ZoneView::new(zone, dcs)
            })
            .collect();
        // A snapshot equal to the current one would only invalidate the
        // query path's decision caches.
        if same_state(&self.world.load(), &inner.zones, &views) {
            return;
        }
        self.world.store(Arc::new(World {
            zones: inner.zones.clone(),
            views,
            generation: world::next_generation(),
        }));
    }
}
