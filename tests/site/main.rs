//! Integration tests of the site's control plane (`boltz-site`, `boltz
//! serve --datacenter`): the reconcile loop and the data plane's report
//! against real `boltz l7` processes on Unix sockets and TCP, in front of
//! real origins. One test binary, a module per area.

#[path = "../support/api.rs"]
mod api;
mod harness;
#[path = "../support/l7_process.rs"]
mod l7_process;
#[path = "../support/log.rs"]
mod log;
#[path = "../support/origin.rs"]
#[allow(
    dead_code,
    reason = "the origin is shared with the L7 tests, which use every knob of it; these use a few"
)]
mod origin;
#[path = "../support/script.rs"]
mod script;
#[path = "../support/wait.rs"]
mod wait;

mod demo_netns;
mod e2e;
mod l4;
#[path = "../support/netns.rs"]
#[allow(
    dead_code,
    reason = "the anycast tests use the point-to-point links and the signals; these use the bridge"
)]
mod netns;
mod reconcile;
mod report;

/// The binary under test.
const BOLTZ: &str = env!("CARGO_BIN_EXE_boltz");
