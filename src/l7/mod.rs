//! The L7 data plane, `boltz l7`: an HTTP/1.1 and HTTP/2 reverse proxy
//! inside a datacenter. It routes each request by Host and path prefix to a
//! named pool ([`route`]), picks a backend (power of two choices over
//! PeakEWMA by default, or any algorithm of the catalogue in [`pick`]),
//! forwards it over a kept-alive upstream connection ([`upstream`]) with
//! streamed bodies ([`proxy`]), and reports the DC's load to `boltz serve`
//! through its local API ([`api`]).
//!
//! - [`config`]: the TOML file and the API's bodies, validated by path.
//! - [`server`]: listeners, worker threads, TLS/ALPN, timeouts, shutdown.
//! - [`serve1`], [`h1`], [`framing`], [`body`]: HTTP/1.1 on both sides,
//!   boltz's own (hyper serves HTTP/2 clients and h2c upstreams).
//! - [`state`]: pools and routes as a lock-free snapshot; health checks.
//! - [`pool`], [`backend`]: per-backend shared state (atomics).
//! - [`breaker`], [`outlier`], [`limits`]: failure handling and admission.
//! - [`stats`]: counters and the latency histogram.

pub mod api;
pub mod backend;
pub mod body;
pub mod breaker;
pub mod config;
pub mod fields;
pub mod framing;
pub mod h1;
pub mod headers;
pub mod idle;
pub mod limits;
pub mod outlier;
pub mod pick;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod serve1;
pub mod server;
pub mod state;
pub mod stats;
pub mod upstream;
