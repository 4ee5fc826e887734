//! DNS: the wire-level query handler ([`handler`]), client-subnet rules
//! ([`ecs`]) and the UDP/TCP transports ([`server`]).

pub mod ecs;
pub mod fast;
pub mod handler;
pub mod index;
pub mod server;
pub mod udp;

pub use handler::{Handler, Transport, DEFAULT_UDP_PAYLOAD};
