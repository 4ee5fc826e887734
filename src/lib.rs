//! boltz: an authoritative DNS server that steers A/AAAA answers between
//! datacenters by client location, health and load (Boltzmann softening).
//!
//! # Layout
//!
//! - [`zone`]: the typed zone model read from `zones/*.toml`, validation with
//!   `file:line:col` errors, and the compiled lookup structures.
//! - [`geo`]: MaxMind DB lookup (client address → location and "cell"
//!   network), hot reload, and the `.mmdb` writer behind `boltz geoip build`.
//! - [`health`]: HTTP/TCP probes with rise/fall hysteresis.
//! - [`load`]: per-DC utilisation feeds, smoothing and fallback.
//! - [`steer`]: pure policy: energies, prices μ, temperature, Boltzmann
//!   probabilities and the sticky rendezvous draw.
//! - [`control`]: the mutable runtime state (health, drain, load, prices) and
//!   the immutable [`control::World`] snapshot the query path reads.
//! - [`dns`]: wire-level query handler and the UDP/TCP servers.
//! - [`api`]: the local HTTP API (status, explain, drain, load, metrics).
//! - [`l4`]: the XDP Maglev L4 balancer (C data path, Rust control plane).
//! - [`l7`]: the HTTP reverse proxy (P2C + PeakEWMA, health, ejection).
//! - [`metrics`]: counters rendered in Prometheus text format.
//! - [`cli`]: the `boltz` subcommands.
//! - [`util`]: small shared helpers (durations).

pub mod api;
pub mod cli;
pub mod control;
pub mod dns;
pub mod geo;
pub mod health;
pub mod l4;
pub mod l7;
pub mod load;
pub mod metrics;
pub mod steer;
pub mod util;
pub mod zone;
