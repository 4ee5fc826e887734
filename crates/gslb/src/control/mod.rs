//! Control: the one place that owns mutable runtime state — each DC's
//! health, drain flag, load tracker and price — and the background tasks
//! that feed it (health probes, load feeds, the price ticker). Every change
//! republishes an immutable [`World`] through `arc-swap`; the query path only
//! ever loads that snapshot, so it never waits on a task holding a lock.
//!
//! State is keyed by (zone origin, DC name), so a zone reload keeps the
//! health, drain and price of every DC that still exists, and restarts its
//! probes only when their configuration changed.
//!
//! This file holds the state and its zone reload; each writer has a file:
//! `tasks` (health probes, load feeds and reports applied in-process, one
//! path), `prices` (the price ticker) and `operator` (drain, load
//! overrides), and `publish` turns the state into
//! the snapshot. The query path's side: `decide` (the steering decision),
//! `placement` (where a client is), `decision_cache` (both, cached per
//! thread), `explain`, and `world` (the snapshot's types).

pub mod decide;
pub mod decision_cache;
pub mod explain;
mod operator;
pub mod placement;
mod prices;
mod publish;
mod tasks;
pub mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

pub use decide::{decide, Family, Mode};
pub use decision_cache::steer_client;
pub use explain::{explain, Explanation};
pub use placement::Placement;
pub use world::{DcCounters, DcStatus, DcView, World, ZoneView};

use crate::load::{self, FeedHealth, LoadConfig, LoadTracker};
use crate::steer::{PriceMemory, PriceState, ZoneOutcome};
use crate::zone::ZoneSet;
use boltz_health::{HealthConfig, HealthStatus, Prober};

type Key = (String, String);

struct DcState {
    health: HealthStatus,
    drained: bool,
    load: LoadTracker,
    price: PriceState,
    /// A load reading arrived since the last price step.
    fresh: bool,
    counters: Arc<DcCounters>,
    health_task: Option<(HealthConfig, JoinHandle<()>)>,
    load_task: Option<(LoadConfig, f64, JoinHandle<()>)>,
}

impl DcState {
    /// Eligible for new answers now (the rule of [`world::usable`]).
    fn usable(&self, now: Instant) -> bool {
        world::usable(self.health.state, self.drained, self.feed_health(now))
    }

    /// The fresh feed's word on the DC's health.
    fn feed_health(&self, now: Instant) -> Option<FeedHealth> {
        self.load.facts(now).and_then(|f| f.health)
    }

    /// The fresh feed's capacity, else the declared one.
    fn capacity(&self, now: Instant, declared: f64) -> f64 {
        self.load
            .facts(now)
            .and_then(|f| f.capacity)
            .unwrap_or(declared)
    }
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
    /// The last price step's conclusion per zone.
    outcomes: HashMap<String, ZoneOutcome>,
    /// What each zone's price controller learned from its moves.
    memories: HashMap<String, PriceMemory>,
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

/// Error of an operator action on a DC, or of a report applied to one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// The DC named is in no zone (or not in the zone named).
    #[error("no datacenter `{0}` in any zone")]
    NoSuchDatacenter(String),
    /// The zone named is not served.
    #[error("no zone `{0}`")]
    NoSuchZone(String),
    /// An override that is no utilisation.
    #[error("utilisation: {0}")]
    InvalidUtilisation(String),
    /// A report the DC's load tracker rejected (too old, out of range, or
    /// a DC without a feed).
    #[error("report: {0}")]
    Report(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for probes: {0}")]
    Http(String),
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
                outcomes: HashMap::new(),
                memories: HashMap::new(),
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
            // A DC added to a zone whose prices already run slow-starts.
            let running = inner.last_price_update.contains_key(&zname);
            for dc in &zone.datacenters {
                let key = (zname.clone(), dc.name.clone());
                let mut st = old.remove(&key).unwrap_or_else(|| DcState {
                    health: HealthStatus::default(),
                    drained: false,
                    load: LoadTracker::new(dc.load.as_ref()),
                    price: if running {
                        PriceState::joining()
                    } else {
                        PriceState::default()
                    },
                    fresh: false,
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
        self.publish(&mut inner);
    }
}
