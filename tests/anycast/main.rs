//! Integration tests of anycast (`boltz serve --anycast`): real BIRD
//! daemons in network namespaces, a router and two sites, and a client
//! that counts lost queries. Needs root and BIRD 2; says "skipped: why"
//! without.

#[path = "../support/api.rs"]
mod api;

mod deploy;
mod exabgp;
#[path = "../support/exposition.rs"]
mod exposition;
mod harness;
#[path = "../support/log.rs"]
mod log;
#[path = "../support/netns.rs"]
#[allow(
    dead_code,
    reason = "the namespace helpers are shared with the XDP tests, which use the bridge and the decapsulating backends"
)]
mod netns;
#[path = "../support/query.rs"]
mod query;
mod steps;

/// The binary under test.
pub const BOLTZ: &str = env!("CARGO_BIN_EXE_boltz");
