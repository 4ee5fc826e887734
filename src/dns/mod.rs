//! DNS: the wire-level query handler ([`handler`]), client-subnet rules
//! ([`ecs`]) and the UDP/TCP transports ([`server`]).

pub mod ecs;
pub mod handler;
pub mod server;

pub use handler::{Handler, Transport, DEFAULT_UDP_PAYLOAD};
