//! boltz-site: `boltz serve --datacenter NAME`, a site's control plane.
//! The DNS node of a datacenter configures the DC's own data plane and
//! steers on what that data plane reports:
//!
//! - [`config`]: the DC's inside as `datacenters.toml` declares it (L4
//!   services, L7 pools and routes, the report's thresholds), checked with
//!   `file:line:col` by the components' own parsers.
//! - [`endpoint`]: a component's local API (Unix socket, or TCP with a
//!   token) and one JSON request to it.
//! - `reconcile`: the loop per component (observe, push what differs with
//!   a newer version, back off while it is down, say where it stands), with
//!   one pass per daemon in `l4` and `l7`, and what a pass speaks (the
//!   versions pushed, how a pass ends) in `pass`.
//! - `report`: from the data plane's load and backend health to the DC's
//!   utilisation, effective capacity and health (the formula is there).

#![warn(missing_docs)]

pub mod config;
pub mod endpoint;
mod l4;
mod l7;
mod pass;
mod reconcile;
mod report;

pub use config::{check_file, load, Dataplane, L4Service, L4Site, L7Site, Site};
pub use endpoint::Endpoint;
pub use reconcile::{spawn as spawn_reconcile, ComponentStatus, Kind, Shared, SyncState};
pub use report::{spawn as spawn_reports, Health, Report};
