//! boltz-l4: `boltz l4`, the L4 data plane of a datacenter. An XDP program
//! (`bpf/balancer.c`) sends each VIP's packets to a backend by a Maglev
//! table and a connection table, IP-in-IP encapsulated (DSR) or by MAC
//! rewrite; this crate is its control plane.
//!
//! # Layout
//!
//! - [`abi`]: the byte layouts shared with the C program (map keys and
//!   values, the flow hash), public so tests can build packets and keys.
//! - [`sys`]: raw `bpf(2)` calls on map and program fds (updates,
//!   `BPF_PROG_TEST_RUN`).
//! - [`dataplane`]: loading the object with aya, attaching, pinning.
//! - `service`: the service model (VIP → weighted backends) and the API's
//!   body parsing.
//! - `control`: [`Control`], the one writer of the tables (Maglev from
//!   `boltz_core::maglev`, minimal-disruption rebuilds, restart recovery).
//! - `neigh`: warming the kernel's neighbour table for backends.
//! - `api`: the local HTTP API ([`ApiState`], [`router`], load sampling).

#![warn(missing_docs)]

pub mod abi;
mod api;
mod control;
pub mod dataplane;
mod neigh;
mod service;
pub mod sys;

pub use api::{router, sample, ApiState, Rates};
pub use control::Control;
pub use service::{parse_mac, parse_spec, Vip};
