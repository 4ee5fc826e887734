//! The reconcile loop of one component: observe what the daemon holds,
//! push what differs from the site's declaration, and say where it stands.
//!
//! Each pass reads the live state (`GET`), compares it with the wanted
//! state and with the versions this node pushed, and `PUT`s only what
//! differs, with a version above both (so a daemon that kept its state
//! across our restart, or was changed by hand, still takes the push). A
//! daemon that restarted empty, or whose configuration drifted, is found
//! by the next pass (every second) and pushed again. A daemon that is down
//! is retried with exponential backoff; a refused body (400) is reported
//! and retried on the same backoff, since only a new declaration can fix
//! it. A new declaration (zone reload) starts a pass at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::Site;
use crate::pass::{Memory, PassError};
use crate::{l4, l7};
use boltz_core::clock::unix_ms;

/// How often an in-sync component is looked at again.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Which daemon a loop drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `boltz l4`: services.
    L4,
    /// `boltz l7`: pools and routes.
    L7,
}

/// Where a component stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// No pass has finished yet.
    Pending,
    /// The daemon holds exactly what is declared.
    InSync,
    /// The daemon's API cannot be reached (retrying with backoff).
    Unreachable,
    /// The daemon refused what was pushed (retrying with backoff).
    Rejected,
}

/// A component's reconcile state, for `/v1/status`, `explain` and
/// `/metrics`.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentStatus {
    /// Which daemon.
    pub component: Kind,
    /// Its API.
    pub endpoint: String,
    /// Where it stands.
    pub state: SyncState,
    /// The last problem, while there is one.
    pub error: Option<String>,
    /// When `state` last changed (Unix ms).
    pub since_unix_ms: u64,
    /// When the last pass ended (Unix ms).
    pub checked_unix_ms: u64,
    /// Successful `PUT`s and `DELETE`s.
    pub pushes: u64,
    /// Pushes refused as stale (409).
    pub conflicts: u64,
    /// Passes that failed.
    pub failures: u64,
    /// Each resource (VIP or pool) and the version it holds.
    pub versions: BTreeMap<String, u64>,
}

impl ComponentStatus {
    fn new(component: Kind, endpoint: String) -> Self {
        ComponentStatus {
            component,
            endpoint,
            state: SyncState::Pending,
            error: None,
            since_unix_ms: unix_ms().unwrap_or(0),
            checked_unix_ms: 0,
            pushes: 0,
            conflicts: 0,
            failures: 0,
            versions: BTreeMap::new(),
        }
    }

    fn set(&mut self, state: SyncState, error: Option<String>) {
        let now = unix_ms().unwrap_or(0);
        if state != self.state {
            self.since_unix_ms = now;
            match (&error, state) {
                (Some(e), _) => {
                    tracing::warn!(component = ?self.component, endpoint = %self.endpoint, ?state, error = %e, "data plane reconcile")
                }
                (None, _) => {
                    tracing::info!(component = ?self.component, endpoint = %self.endpoint, ?state, "data plane reconcile")
                }
            }
        }
        self.state = state;
        self.error = error;
        self.checked_unix_ms = now;
    }
}

/// A handle on a running loop's state.
pub type Shared = Arc<Mutex<ComponentStatus>>;

/// Starts the loop of `kind` for the declarations `desired` carries; it
/// runs until `desired`'s sender is dropped.
pub fn spawn(kind: Kind, desired: watch::Receiver<Arc<Site>>) -> Shared {
    let endpoint = endpoint_of(kind, &desired.borrow()).unwrap_or_default();
    let status = Arc::new(Mutex::new(ComponentStatus::new(kind, endpoint)));
    tokio::spawn(run(kind, desired, status.clone()));
    status
}

fn endpoint_of(kind: Kind, site: &Site) -> Option<String> {
    match kind {
        Kind::L4 => site.l4.as_ref().map(|s| s.api.to_string()),
        Kind::L7 => site.l7.as_ref().map(|s| s.api.to_string()),
    }
}

async fn run(kind: Kind, mut desired: watch::Receiver<Arc<Site>>, status: Shared) {
    let mut memory = Memory::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        let site = desired.borrow_and_update().clone();
        memory.pushes = 0;
        let result = match kind {
            Kind::L4 => match &site.l4 {
                Some(s) => l4::pass(s, &mut memory).await,
                None => Ok(BTreeMap::new()),
            },
            Kind::L7 => match &site.l7 {
                Some(s) => l7::pass(s, &mut memory).await,
                None => Ok(BTreeMap::new()),
            },
        };
        let wait = {
            let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
            st.endpoint = endpoint_of(kind, &site).unwrap_or_default();
            st.pushes += memory.pushes;
            match result {
                Ok(versions) => {
                    st.versions = versions;
                    st.set(SyncState::InSync, None);
                    backoff = BACKOFF_MIN;
                    CHECK_EVERY
                }
                Err(PassError::Conflict(e)) => {
                    // Someone pushed meanwhile: look again at once.
                    st.conflicts += 1;
                    let state = st.state;
                    st.set(state, Some(e));
                    Duration::ZERO
                }
                Err(e) => {
                    st.failures += 1;
                    let state = match e {
                        PassError::Rejected(_) => SyncState::Rejected,
                        _ => SyncState::Unreachable,
                    };
                    st.set(state, Some(e.to_string()));
                    let w = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    w
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = desired.changed() => if changed.is_err() { return },
        }
    }
}
