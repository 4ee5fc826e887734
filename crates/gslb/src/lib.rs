//! boltz-gslb: the global server load balancer. An authoritative DNS server
//! that answers each A/AAAA query on a steered name with the datacenter
//! that Boltzmann sampling picks from distance, health, load price and
//! weight; static records are answered as any authoritative server does.
//!
//! # Layout
//!
//! The modules follow one query's path:
//!
//! - `zone`: the typed zone model read from `zones/*.toml`, validation with
//!   `file:line:col` errors, the compiled lookup structures and the fast
//!   path's wire index built with them.
//! - `geo`: MaxMind DB lookup (client address → location and "cell"
//!   network), hot reload, and the `.mmdb` writer behind `boltz geoip build`.
//! - `load`: per-DC load feeds and their document ([`FeedReport`]),
//!   smoothing, the feed's health and capacity, and fallback.
//! - `control`: the state owner ([`Control`]: health, drain, load, prices)
//!   and the immutable [`World`] snapshot the query path reads.
//! - `dns`: the bytes-in, bytes-out query [`Handler`] (fast path first) and
//!   the UDP/TCP transports.
//! - `api`: the local HTTP API (status, explain, drain, load, the site's
//!   own report [`SiteFeed`], `/metrics`).
//! - `metrics`: the query path's counters ([`Metrics`]) and the Prometheus
//!   rendering of them and of the [`World`]'s gauges.
//!
//! The steering maths (energies, prices μ, temperature, the sticky
//! rendezvous draw) is the `boltz-steer` crate, shared with the L7 proxy
//! and the simulator. Health probes come from `boltz-health`; clocks, hashing, counters and
//! the Prometheus writer from `boltz-core`.
//!
//! Each module's own doc names its files, one concept each. Unit tests too
//! long to sit under the code they test live beside it: those of `x.rs` in
//! `x/tests.rs`, those of `dir/mod.rs` in `dir/tests.rs`.

#![warn(missing_docs)]

mod api;
mod control;
mod dns;
mod geo;
mod load;
mod metrics;
use boltz_steer as steer;
mod zone;

pub use api::{parse_explain_args, router, AnycastView, ApiState, SiteFeed};
pub use control::{decide, explain, Control, ControlError, Explanation, Family, Placement, World};
pub use dns::{
    bind, random_secret, read_secrets, serve_tcp, spawn_udp_workers, Cookies, Handler, Rrl,
    RrlConfig, Secrets, TcpLimits, TcpShared, Transport,
};
pub use geo::{build_from_csv, BuildStats, GeoDb, GeoRecord, MmdbWriter};
pub use load::{FeedHealth, FeedReport, ReportError};
pub use metrics::Metrics;
pub use steer::{draw_into, hash_bytes, Candidate, LatLon};
pub use zone::{datacenters_file, zone_files, ZoneSet};
