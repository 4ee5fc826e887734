//! boltz-anycast: anycast for `boltz serve`. BIRD speaks BGP to the
//! routers; boltz decides what is announced, by enabling and disabling
//! the static protocols that carry the name servers' prefixes over BIRD's
//! control socket (toggling a static protocol never resets a session).
//!
//! - [`bird`]: the control socket client: one command per line, numbered
//!   replies; enable, disable, the protocols BIRD knows.
//! - [`announce`]: whether a prefix should be announced, drained or
//!   withdrawn, from the self-probe, the drain and the stop (rise/fall,
//!   hold-down, the drain window).

#![warn(missing_docs)]

pub mod announce;
pub mod bird;

pub use announce::{Announcer, Rules, Want, Why};
pub use bird::{Bird, BirdError, Reply};
