//! A pool as the request path sees it: an immutable snapshot of its
//! backends (shared `Arc<Backend>` state), the picker built for them, the
//! per-backend admission gates, the retry budget and the adaptive
//! concurrency limit. An update builds a new snapshot that reuses the
//! state of every backend that stays (EWMA, health, ejection, breaker,
//! admission), so a reweight forgets nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::backend::{AdminState, Backend};
use super::config::PoolConfig;
use super::limits::{Admission, ConcurrencyLimiter, RetryBudget};
use super::pick::{PickOptions, Picker};

#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub version: u64,
    pub config: PoolConfig,
    pub backends: Vec<Arc<Backend>>,
    pub admission: Vec<Arc<Admission>>,
    pub picker: Picker,
    pub retry: Arc<RetryBudget>,
    pub concurrency: Option<Arc<ConcurrencyLimiter>>,
    /// Fewer than `panic_threshold` of the backends are healthy: balance
    /// over all of them (refreshed by [`Pool::refresh_panic`]).
    pub panic: AtomicBool,
}

impl Pool {
    /// Builds the snapshot for `config`, reusing `old`'s state for every
    /// backend address that stays.
    pub fn new(
        name: &str,
        version: u64,
        config: PoolConfig,
        old: Option<&Pool>,
        workers: usize,
    ) -> Pool {
        let old_by_addr: HashMap<SocketAddr, (Arc<Backend>, Arc<Admission>)> = old
            .map(|p| {
                p.backends
                    .iter()
                    .zip(&p.admission)
                    .map(|(b, a)| (b.addr, (b.clone(), a.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let mut backends = Vec::with_capacity(config.backends.len());
        let mut admission = Vec::with_capacity(config.backends.len());
        for bc in &config.backends {
            let (b, a) = match old_by_addr.get(&bc.address) {
                Some((b, a)) => {
                    b.set_admin(bc.weight, bc.state);
                    a.set(&config.admission);
                    (b.clone(), a.clone())
                }
                None => (
                    Arc::new(Backend::new(bc.address, bc.weight, bc.state)),
                    Arc::new(Admission::new(&config.admission)),
                ),
            };
            b.breaker.configure(config.breaker.clone());
            backends.push(b);
            admission.push(a);
        }
        let opts = PickOptions {
            slow_start_ns: config.slow_start.map_or(0, |d| d.as_nanos() as u64),
            bounded_load: config.bounded_load,
            workers: workers.max(1),
            boltzmann: config.boltzmann.clone(),
            capacity: config
                .backends
                .iter()
                .map(|b| b.capacity_in(&config))
                .collect(),
            ..PickOptions::default()
        };
        let picker = Picker::new(config.lb, &backends, opts);
        let retry = match old {
            Some(o) if o.config.retry == config.retry => o.retry.clone(),
            _ => Arc::new(RetryBudget::new(&config.retry)),
        };
        // A limiter keeps its learnt limit while its settings stay.
        let concurrency = match (&config.concurrency, old) {
            (Some(cfg), Some(o)) if o.config.concurrency.as_ref() == Some(cfg) => {
                o.concurrency.clone()
            }
            (Some(cfg), _) => Some(Arc::new(ConcurrencyLimiter::new(cfg))),
            (None, _) => None,
        };
        let pool = Pool {
            name: name.to_string(),
            version,
            config,
            backends,
            admission,
            picker,
            retry,
            concurrency,
            panic: AtomicBool::new(false),
        };
        pool.refresh_panic(boltz_core::clock::precise_ns());
        pool
    }

    /// Recomputes panic mode: among backends not draining, is the healthy
    /// share below the threshold? Returns the new value.
    pub fn refresh_panic(&self, now: u64) -> bool {
        let serving: Vec<&Arc<Backend>> = self
            .backends
            .iter()
            .filter(|b| b.admin_state() == AdminState::Up && b.weight() > 0.0)
            .collect();
        let healthy = serving.iter().filter(|b| b.healthy(now)).count();
        let panic = !serving.is_empty()
            && (healthy as f64) < self.config.panic_threshold * serving.len() as f64;
        let was = self.panic.swap(panic, Relaxed);
        if was != panic {
            if panic {
                tracing::warn!(pool = %self.name, healthy, of = serving.len(), "panic mode: balancing over every backend");
            } else {
                tracing::info!(pool = %self.name, healthy, of = serving.len(), "panic mode over");
            }
        }
        panic
    }

    pub fn in_panic(&self) -> bool {
        self.panic.load(Relaxed)
    }
}
