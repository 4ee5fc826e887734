//! boltz-core: what every component of boltz shares, and nothing that
//! belongs to one of them. Each module is one primitive with one home; the
//! modules are the public surface (`boltz_core::clock::coarse_ns()` reads
//! better than a flat list of re-exports).
//!
//! # Layout
//!
//! - [`clock`]: the three clocks, one name each (coarse, precise, wall).
//! - [`duration`]: `"5s"`-style durations and their serde adapters.
//! - [`hash`]: the pinned hashing primitives (FNV-1a, fmix64, splitmix64).
//! - [`counter`]: per-thread sharded counters, cache-line padding,
//!   `AtomicF64`.
//! - [`prometheus`]: the one Prometheus text writer.
//! - [`diag`]: `file:line:col` diagnostics for configuration files.
//! - [`maglev`]: the Maglev table builder (L4 tables, L7's maglev picker).
//! - [`local_api`]: JSON errors and bearer-token guards of the local APIs.

#![warn(missing_docs)]

pub mod clock;
pub mod counter;
pub mod diag;
pub mod duration;
pub mod hash;
pub mod local_api;
pub mod maglev;
pub mod prometheus;
