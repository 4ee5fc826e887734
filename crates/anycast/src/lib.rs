//! boltz-anycast: anycast for `boltz serve`. BIRD speaks BGP to the
//! routers; boltz decides what is announced, by enabling and disabling
//! the static protocols that carry the name servers' prefixes over BIRD's
//! control socket (toggling a static protocol never resets a session).
//!
//! - [`bird`]: the control socket client: one command per line, numbered
//!   replies; enable, disable, the protocols BIRD knows.

#![warn(missing_docs)]

pub mod bird;

pub use bird::{Bird, BirdError, Reply};
