//! Integration tests of `boltz l4`: the real verified XDP program on
//! synthetic packets (`BPF_PROG_TEST_RUN`) and the real daemon forwarding
//! between network namespaces. They need root and a build with clang; the
//! test script installs clang, and elsewhere each test says why it skips.

#[path = "../support/api.rs"]
mod api;
#[path = "../support/exposition.rs"]
mod exposition;
#[path = "../support/netns.rs"]
#[allow(
    dead_code,
    reason = "the anycast tests use the point-to-point links and the signals; these use the bridge"
)]
mod lan;
#[path = "../support/log.rs"]
mod log;

mod netns;
mod program;

/// The binary under test.
const BOLTZ: &str = env!("CARGO_BIN_EXE_boltz");
