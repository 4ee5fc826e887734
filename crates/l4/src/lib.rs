//! boltz-l4: `boltz l4`, the L4 data plane of a datacenter. An XDP program
//! (`bpf/balancer.c`) sends each VIP's packets to a backend by a Maglev
//! table and a connection table, IP-in-IP encapsulated (DSR) or by MAC
//! rewrite; this crate is its control plane.
//!
//! # Layout
//!
//! The data path is C in `bpf/`, one object per `.c` file (`build.rs`):
//!
//! - `balancer.c` → `balancer.o`: the `balancer` and `decap` programs, with
//!   headers by role: `abi.h` (the layouts [`abi`] mirrors), `maps.h`,
//!   `parse.h`, `hash.h`, `flows.h` (the connection table) and `encap.h`.
//! - `bench.c` → `bench.o`: the benchmarks' packet generator, pass and
//!   sink programs; not used by boltz itself.
//!
//! The control plane:
//!
//! - [`abi`]: the byte layouts shared with the C program (map keys and
//!   values, the flow hash), public so tests can build packets and keys.
//! - [`sys`]: raw `bpf(2)` calls on map and program fds (updates,
//!   `BPF_PROG_TEST_RUN`).
//! - [`dataplane`]: the embedded objects and loading them with aya
//!   (`object`), the balancer's map fds (`maps`), attaching and pinning on
//!   a bpffs (`pin`), the benchmarks' programs (`bench`).
//! - `service`: the service model (VIP → weighted backends, its Maglev
//!   table); `service/parse` reads the API's bodies field by field,
//!   `service/mac` writes and reads MACs.
//! - `control`: [`Control`], the one writer of the tables (Maglev from
//!   `boltz_core::maglev`, minimal-disruption rebuilds, restart recovery);
//!   `control/state` the ids and backend indexes handed out (the state
//!   file), `control/flows` the connection table through mmap,
//!   `control/view` what the API reads.
//! - `neigh`: warming the kernel's neighbour table for backends.
//! - `api`: the local HTTP API ([`ApiState`], [`router`], the service
//!   handlers); `api/load` the counter sampler ([`sample`], [`Rates`]) and
//!   `/v1/load`, `api/metrics` the Prometheus text.

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
