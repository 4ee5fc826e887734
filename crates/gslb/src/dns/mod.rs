//! DNS: the wire-level query handler ([`handler`]) and its screen for
//! malformed and refused queries ([`screen`]), client-subnet rules
//! ([`ecs`]), the fast path and its index, and the UDP/TCP transports
//! ([`server`], [`udp`], [`tcp`]).

pub mod cookie;
pub mod ecs;
pub mod fast;
pub mod handler;
pub mod rrl;
pub mod screen;
pub mod server;
pub mod tcp;
pub mod transport;
pub mod udp;

pub use cookie::{random_secret, read_secrets, Cookies, Secrets};
pub use handler::Handler;
pub use rrl::{Rrl, RrlConfig};
pub use server::bind;
pub use tcp::{serve_tcp, TcpLimits, TcpShared};
pub use transport::Transport;
pub use udp::spawn_workers as spawn_udp_workers;
