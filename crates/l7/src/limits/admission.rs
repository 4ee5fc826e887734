//! The per-backend in-flight cap (`admission`): a semaphore resized in
//! place by the control plane and a bounded, time-limited queue of
//! requests waiting for a permit ([`Admission`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use boltz_core::duration::serde_duration;

/// `admission = { max_in_flight = 100, queue = 50, queue_timeout = "1s" }`
/// per backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Requests that may wait for a slot when all are taken.
    #[serde(default)]
    pub queue: u32,
    #[serde(default = "default_1s", with = "serde_duration")]
    pub queue_timeout: Duration,
}

fn default_1s() -> Duration {
    Duration::from_secs(1)
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_in_flight: None,
            queue: 0,
            queue_timeout: default_1s(),
        }
    }
}

impl AdmissionConfig {
    /// Problems, each naming its field under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if self.max_in_flight == Some(0) {
            e.push(format!("{at}.max_in_flight: must be at least 1"));
        }
        if self.queue > 0 && self.max_in_flight.is_none() {
            e.push(format!(
                "{at}.queue: needs max_in_flight (without a cap nothing waits)"
            ));
        }
        if self.queue > 0 && self.queue_timeout.is_zero() {
            e.push(format!(
                "{at}.queue_timeout: must be more than 0 when queue is set"
            ));
        }
        e
    }
}

/// Refused: the backend is at `max_in_flight` and the queue was full or
/// the wait timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backend at its in-flight limit: queue full or wait timed out")]
pub struct Full;

/// One backend's in-flight cap: a semaphore of `max_in_flight` permits and
/// a counted queue of waiters. `set` resizes it in place: permits held
/// stay valid; a shrink below the number held retires permits as they come
/// back.
#[derive(Debug)]
pub struct Admission {
    sem: Arc<Semaphore>,
    limited: AtomicBool,
    queue: AtomicU32,
    timeout_ns: AtomicU64,
    waiters: AtomicU32,
    /// Permits still to retire after a shrink.
    debt: AtomicU32,
    /// Permits in circulation once the debt is paid; written only by `set`
    /// (control plane), whose calls it serialises.
    capacity: Mutex<u32>,
    /// Wakes waiters when `set` lifts the cap.
    changed: Notify,
}

impl Admission {
    pub fn new(cfg: &AdmissionConfig) -> Admission {
        let a = Admission {
            sem: Arc::new(Semaphore::new(0)),
            limited: AtomicBool::new(false),
            queue: AtomicU32::new(0),
            timeout_ns: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            debt: AtomicU32::new(0),
            capacity: Mutex::new(0),
            changed: Notify::new(),
        };
        a.set(cfg);
        a
    }

    /// Applies a new configuration; requests in flight keep their permits.
    pub fn set(&self, cfg: &AdmissionConfig) {
        let mut cap = self.capacity.lock().unwrap_or_else(|e| e.into_inner());
        self.queue.store(cfg.queue, Relaxed);
        self.timeout_ns.store(
            u64::try_from(cfg.queue_timeout.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        let Some(new) = cfg.max_in_flight else {
            // The semaphore keeps its size for a later cap; permits still
            // held come back to it.
            self.limited.store(false, Relaxed);
            self.changed.notify_waiters();
            return;
        };
        if new > *cap {
            let mut grow = new - *cap;
            // First cancel retirements still owed, then add the rest.
            let owed = self
                .debt
                .fetch_update(Relaxed, Relaxed, |d| Some(d - d.min(grow)))
                .unwrap_or(0);
            grow -= owed.min(grow);
            self.sem.add_permits(grow as usize);
        } else if new < *cap {
            let shrink = *cap - new;
            let gone = self.sem.forget_permits(shrink as usize) as u32;
            self.debt.fetch_add(shrink - gone, Relaxed);
        }
        *cap = new;
        self.limited.store(true, Relaxed);
    }

    /// Admits one request: `Ok(None)` without a cap, `Ok(Some(permit))`
    /// (held until the response is done), or `Err(Full)` when the cap is
    /// reached and the queue is full or the wait exceeds `queue_timeout`.
    /// Dropping the future leaves the queue.
    pub async fn enter(&self) -> Result<Option<OwnedSemaphorePermit>, Full> {
        if !self.limited.load(Relaxed) {
            return Ok(None);
        }
        self.settle();
        while let Ok(p) = self.sem.clone().try_acquire_owned() {
            if let Some(p) = self.keep(p) {
                return Ok(Some(p));
            }
        }
        let queue = self.queue.load(Relaxed);
        if self
            .waiters
            .fetch_update(Relaxed, Relaxed, |w| (w < queue).then_some(w + 1))
            .is_err()
        {
            return Err(Full);
        }
        let _waiting = Waiting(&self.waiters);
        let now = tokio::time::Instant::now();
        let wait = Duration::from_nanos(self.timeout_ns.load(Relaxed));
        // A timeout of centuries (u64::MAX ns) must not overflow Instant.
        let deadline = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        tokio::time::timeout_at(deadline, self.wait())
            .await
            .unwrap_or(Err(Full))
    }

    async fn wait(&self) -> Result<Option<OwnedSemaphorePermit>, Full> {
        loop {
            // Registered before the check so a `set` in between is seen.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.limited.load(Relaxed) {
                return Ok(None);
            }
            tokio::select! {
                p = self.sem.clone().acquire_owned() => {
                    // Never closed; a closed semaphore would admit nobody.
                    let p = p.map_err(|_| Full)?;
                    if let Some(p) = self.keep(p) {
                        return Ok(Some(p));
                    }
                }
                () = &mut changed => {}
            }
        }
    }

    /// Retires `p` if a shrink still owes a permit, else hands it back.
    fn keep(&self, p: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        if self
            .debt
            .fetch_update(Relaxed, Relaxed, |d| d.checked_sub(1))
            .is_ok()
        {
            p.forget();
            None
        } else {
            Some(p)
        }
    }

    /// Retires permits owed by a shrink that have come back meanwhile, in
    /// one go rather than one per request.
    fn settle(&self) {
        let owed = self.debt.swap(0, Relaxed);
        if owed > 0 {
            let gone = self.sem.forget_permits(owed as usize) as u32;
            if gone < owed {
                self.debt.fetch_add(owed - gone, Relaxed);
            }
        }
    }

    /// The cap (`None` when unlimited); for status pages, it takes the
    /// control-plane lock.
    pub fn max_in_flight(&self) -> Option<u32> {
        self.limited
            .load(Relaxed)
            .then(|| *self.capacity.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Requests waiting for a permit now.
    pub fn waiting(&self) -> u32 {
        self.waiters.load(Relaxed)
    }
}

/// Counts a waiter out however its wait ends (permit, timeout, drop).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests;
