//! The proxy's mutable configuration and everything that runs beside the
//! request path. Pools and routes live in one immutable [`Snapshot`]
//! behind an `ArcSwap`: the request path loads it without a lock, and an
//! API update builds a whole new snapshot (reusing backend state) and
//! swaps it in. Writers are serialised by a mutex that the request path
//! never takes. Also here: the active health-check tasks (one per backend
//! of a pool with `health`), and the maintenance tick that refreshes panic
//! mode and forgives old ejections.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::backend::Backend;
use super::clients::ClientCounts;
use super::config::{validate_routes, Config, PoolConfig, RouteConfig};
use super::metrics::Metrics;
use super::outlier;
use super::pool::Pool;
use super::route::Routes;
use boltz_core::clock::precise_ns;
use boltz_health::{HealthConfig, Prober};

/// What the request path reads.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub pools: BTreeMap<String, Arc<Pool>>,
    /// Routes name pools, so a pool update keeps this very list.
    pub routes: Arc<Routes>,
}

/// Why an update was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("version {got} is not newer than the applied version {have}")]
    Stale { got: u64, have: u64 },
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The proxy's state owner: configuration, the routing snapshot, counters
/// and health-check tasks.
pub struct Control {
    /// The configuration it started from.
    pub config: Config,
    /// `Via` values for `config.via`.
    pub via: super::headers::Via,
    /// Pools and routes, swapped whole on an update.
    pub snapshot: ArcSwap<Snapshot>,
    /// Per-worker counters.
    pub metrics: Metrics,
    /// Requests per client prefix, for `/v1/load`'s `clients`.
    pub clients: ClientCounts,
    writer: Mutex<()>,
    health: Mutex<HashMap<(String, SocketAddr), JoinHandle<()>>>,
    prober: Option<Arc<Prober>>,
    /// Runtime for health checks (the control runtime).
    handle: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    /// The proxy for a validated `config`. Health checks start only when a
    /// runtime handle is given (the binary and the tests give one).
    pub fn new(config: Config, handle: Option<tokio::runtime::Handle>) -> Arc<Control> {
        let workers = config.workers();
        let pools = config
            .pools
            .iter()
            .map(|(name, pc)| {
                (
                    name.clone(),
                    Arc::new(Pool::new(name, 0, pc.clone(), None, workers)),
                )
            })
            .collect();
        let routes = Arc::new(Routes::new(&config.routes, None));
        let prober = handle.as_ref().and_then(|_| match Prober::new() {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::error!(error = %e, "no health-check client: active checks disabled");
                None
            }
        });
        let workers = config.workers();
        let l7 = Arc::new(Control {
            via: super::headers::Via::new(&config.via),
            config,
            snapshot: ArcSwap::from_pointee(Snapshot { pools, routes }),
            metrics: Metrics::new(workers),
            clients: ClientCounts::new(workers),
            writer: Mutex::new(()),
            health: Mutex::new(HashMap::new()),
            prober,
            handle,
        });
        for pool in l7.snapshot.load().pools.values() {
            l7.sync_health(pool, None);
        }
        l7
    }

    /// Replaces (or creates) pool `name` with `config` at `version`.
    /// Returns false when the pool already had exactly this.
    pub fn put_pool(
        &self,
        name: &str,
        version: u64,
        config: PoolConfig,
    ) -> Result<bool, UpdateError> {
        let problems = config.validate(&format!("pools.{name}"));
        if !problems.is_empty() {
            return Err(UpdateError::Invalid(problems));
        }
        let _w = self.writer.lock().expect("l7 writer");
        let snap = self.snapshot.load_full();
        let old = snap.pools.get(name);
        if let Some(o) = old {
            if version == o.version && config == o.config {
                return Ok(false);
            }
            if version <= o.version {
                return Err(UpdateError::Stale {
                    got: version,
                    have: o.version,
                });
            }
        }
        let pool = Arc::new(Pool::new(
            name,
            version,
            config,
            old.map(|p| &**p),
            self.config.workers(),
        ));
        self.sync_health(&pool, old.map(|p| &**p));
        let mut pools = snap.pools.clone();
        pools.insert(name.to_string(), pool);
        self.snapshot.store(Arc::new(Snapshot {
            pools,
            routes: snap.routes.clone(),
        }));
        Ok(true)
    }

    /// Removes a pool; refused while a route names it.
    pub fn delete_pool(&self, name: &str) -> Result<bool, UpdateError> {
        let _w = self.writer.lock().expect("l7 writer");
        let snap = self.snapshot.load_full();
        if !snap.pools.contains_key(name) {
            return Ok(false);
        }
        let used: Vec<String> = snap
            .routes
            .configs()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pool == name)
            .map(|(i, _)| format!("routes[{i}].pool: still routes to {name:?}"))
            .collect();
        if !used.is_empty() {
            return Err(UpdateError::Invalid(used));
        }
        let mut pools = snap.pools.clone();
        pools.remove(name);
        self.health
            .lock()
            .expect("health tasks")
            .retain(|(p, _), task| {
                let keep = p != name;
                if !keep {
                    task.abort();
                }
                keep
            });
        self.snapshot.store(Arc::new(Snapshot {
            pools,
            routes: snap.routes.clone(),
        }));
        Ok(true)
    }

    /// Replaces the route list (every route must name an existing pool).
    pub fn put_routes(&self, routes: Vec<RouteConfig>) -> Result<(), UpdateError> {
        let _w = self.writer.lock().expect("l7 writer");
        let snap = self.snapshot.load_full();
        let problems = validate_routes(&routes, |p| snap.pools.contains_key(p));
        if !problems.is_empty() {
            return Err(UpdateError::Invalid(problems));
        }
        self.snapshot.store(Arc::new(Snapshot {
            pools: snap.pools.clone(),
            routes: Arc::new(Routes::new(&routes, Some(&snap.routes))),
        }));
        Ok(())
    }

    /// Starts a health task for each backend of `pool` that has none (or
    /// whose pool's check changed), stops those of backends that left.
    fn sync_health(&self, pool: &Pool, old: Option<&Pool>) {
        let (Some(prober), Some(handle)) = (&self.prober, &self.handle) else {
            return;
        };
        let mut tasks = self.health.lock().expect("health tasks");
        let changed = old.is_some_and(|o| o.config.health != pool.config.health);
        tasks.retain(|(p, addr), task| {
            let keep =
                p != &pool.name || (!changed && pool.backends.iter().any(|b| b.addr == *addr));
            if !keep {
                task.abort();
            }
            keep
        });
        let Some(h) = &pool.config.health else {
            for b in &pool.backends {
                b.set_health(super::backend::Health::Unknown);
            }
            return;
        };
        for b in &pool.backends {
            let key = (pool.name.clone(), b.addr);
            if tasks.contains_key(&key) {
                continue;
            }
            let cfg = HealthConfig {
                http: h.path.as_ref().map(|p| format!("http://{}{p}", b.addr)),
                tcp: h.tcp.then(|| b.addr.to_string()),
                expect: h.expect.clone(),
                body: None,
                host: h.host.clone(),
                interval: h.interval,
                timeout: Some(h.timeout),
                rise: h.rise,
                fall: h.fall,
                jitter: 0.1,
                tls_verify: true,
            };
            let backend: Arc<Backend> = b.clone();
            let name = format!("{}/{}", pool.name, b.addr);
            let _g = handle.enter();
            let task = boltz_health::spawn(
                name,
                cfg,
                prober.clone(),
                Arc::new(move |s| backend.set_health(s.state)),
            );
            tasks.insert(key, task);
        }
    }

    /// Once per `every`: panic mode and ejection forgiveness for every pool.
    pub async fn maintain(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = precise_ns();
            for pool in self.snapshot.load().pools.values() {
                pool.refresh_panic(now);
                if let Some(o) = &pool.config.outlier {
                    for b in &pool.backends {
                        outlier::forgive(b, o, now);
                    }
                }
            }
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Ok(tasks) = self.health.get_mut() {
            for t in tasks.values() {
                t.abort();
            }
        }
    }
}
