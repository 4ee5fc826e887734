//! What one reconcile pass speaks, shared by the loop (`reconcile`) and
//! the passes against each daemon (`l4`, `l7`): the request bound, how a
//! pass ends, what the loop remembers between passes (the versions it
//! pushed), and how a write's answer reads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::endpoint::RequestError;

/// Bound of one request to a component.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The API is not there.
    #[error("{0}")]
    Unreachable(String),
    /// A body was refused (400).
    #[error("{0}")]
    Rejected(String),
    /// A version was stale (409): someone else pushed meanwhile.
    #[error("{0}")]
    Conflict(String),
}

impl From<RequestError> for PassError {
    fn from(e: RequestError) -> Self {
        PassError::Unreachable(e.to_string())
    }
}

/// What a loop remembers between passes: per resource, the version it
/// pushed and what it pushed.
#[derive(Debug, Default)]
pub struct Memory {
    /// Resource → (version, body without version).
    pub pushed: BTreeMap<String, (u64, Value)>,
    /// Successful pushes in the current pass.
    pub pushes: u64,
}

impl Memory {
    /// The version to push `name` with: above what the daemon holds and
    /// above anything this node pushed.
    pub fn next_version(&self, name: &str, live: Option<u64>) -> u64 {
        let ours = self.pushed.get(name).map_or(0, |p| p.0);
        live.unwrap_or(0).max(ours) + 1
    }

    /// Whether `name` must be pushed: the daemon lacks it, holds another
    /// version than the one this node pushed, or this node now wants
    /// something else.
    pub fn stale(&self, name: &str, live: Option<u64>, want: &Value) -> bool {
        match (live, self.pushed.get(name)) {
            (Some(lv), Some((v, w))) => lv != *v || w != want,
            _ => true,
        }
    }
}

/// Maps a write's answer to the pass's outcome.
pub fn written(what: &str, a: &crate::endpoint::Answer) -> Result<(), PassError> {
    match a.status {
        200..=299 => Ok(()),
        409 => Err(PassError::Conflict(format!("{what}: {}", a.message()))),
        400 | 401 | 403 | 422 => Err(PassError::Rejected(format!("{what}: {}", a.message()))),
        _ => Err(PassError::Unreachable(format!("{what}: {}", a.message()))),
    }
}
