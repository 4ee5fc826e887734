//! Integration tests of `boltz l7`: the real proxy in-process and the real
//! binary, in front of real HTTP/1.1 and h2c origins on loopback, driven by
//! real clients. One test binary, a module per area.

#[path = "../support/api.rs"]
mod api;
#[path = "../support/exposition.rs"]
mod exposition;
mod harness;
#[path = "../support/origin.rs"]
mod origin;
#[path = "../support/wait.rs"]
mod wait;

mod balancing;
mod http1;
mod protocols;

/// The binary under test.
const BOLTZ: &str = env!("CARGO_BIN_EXE_boltz");
