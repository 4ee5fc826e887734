//! Health checking of datacenters: HTTP/TCP probes ([`Prober`]), rise/fall
//! hysteresis ([`Hysteresis`]) and the per-DC runner ([`spawn`]) that ties
//! them together and publishes a [`HealthStatus`] after every check.
//!
//! The runner knows nothing about zones or steering: it is handed a config
//! and a callback, and the control layer decides what a status means.

#![warn(missing_docs)]

mod config;
mod hysteresis;
mod probe;
mod runner;
#[cfg(any(test, feature = "test-support"))]
pub mod test_server;

pub use config::{parse_http_url, Expect, HealthConfig, HealthTarget, MAX_BODY};
pub use hysteresis::{Health, Hysteresis, Transition};
pub use probe::{describe, read_limited, ProbeError, Prober};
pub use runner::{spawn, HealthStatus};
