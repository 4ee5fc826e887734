//! boltz-anycast: anycast for `boltz serve`. BIRD speaks BGP to the
//! routers; boltz decides what is announced, by enabling and disabling
//! the static protocols that carry the name servers' prefixes over BIRD's
//! control socket (toggling a static protocol never resets a session).
//!
//! - [`config`]: the anycast file (speaker, prefixes, protocols, probe,
//!   rules).
//! - [`probe`]: the self-probe, a real query over UDP and TCP.
//! - [`announce`]: whether a prefix should be announced, drained or
//!   withdrawn, from the self-probe, the drain and the stop (rise/fall,
//!   hold-down, the drain window).
//! - [`speaker`]: a wanted state as BIRD commands; the start-up check.
//! - [`bird`]: the control socket client.
//! - [`driver`]: the loop in `boltz serve`; [`status`] what it shows.
//! - [`guard`]: the process that withdraws when the server dies or hangs.
//! - [`exabgp`]: the lines for ExaBGP's process API.

#![warn(missing_docs)]

pub mod announce;
pub mod bird;
pub mod config;
pub mod driver;
pub mod exabgp;
pub mod guard;
pub mod probe;
pub mod speaker;
pub mod status;

pub use announce::{Announcer, Rules, Want, Why};
pub use bird::{Bird, BirdError, Reply};
pub use config::Config;
pub use driver::{Options, Running, VipHealth};
pub use status::{Document, Status};
