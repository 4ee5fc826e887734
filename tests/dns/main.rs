//! Integration tests of the GSLB: the real `boltz` binary (`serve`,
//! `check`, `explain`, `geoip build`) on loopback, asked by a real DNS
//! client over real sockets, with real HTTP endpoints for health checks
//! and load feeds. One test binary, a module per area (ripgrep's layout).

#[path = "../support/api.rs"]
mod api;
#[path = "../support/exposition.rs"]
mod exposition;
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
#[path = "../support/query.rs"]
mod query;
#[path = "../support/script.rs"]
mod script;
#[path = "../support/wait.rs"]
mod wait;

mod admin_api;
mod check_cli;
mod closed_loop;
mod compliance;
mod cookies;
mod demo_data;
mod demo_script;
mod ecs_scope;
mod fast_path;
mod geo_answers;
mod health_checks;
mod load_feed;
mod one_system;
mod protocol;
mod quick_start;
mod reload;
mod rrl;
mod simulate_cli;
mod tcp;
mod wildcards;

/// The binary under test.
const BOLTZ: &str = env!("CARGO_BIN_EXE_boltz");
