//! boltz-l7: `boltz l7`, the L7 data plane of a datacenter. An HTTP/1.1 and
//! HTTP/2 reverse proxy that routes each request by Host and path prefix to
//! a named pool, picks a backend (power of two choices over PeakEWMA by
//! default, or any algorithm of the catalogue), forwards it over a
//! kept-alive upstream connection with streamed bodies, and reports the
//! DC's load to `boltz serve` through its local API.
//!
//! # Layout
//!
//! - `config`: the TOML file and the API's bodies ([`Config`]), validated
//!   by path with `file:line:col`.
//! - `listen`: listeners, worker threads, TLS/ALPN, shutdown; `worker`:
//!   the calling thread's worker index; `sniff`: HTTP/2 preface or
//!   HTTP/1.1; `idle`: the per-connection watcher of time limits.
//! - `http1/`: HTTP/1.1 on both sides, boltz's own (hyper serves HTTP/2
//!   clients and h2c upstreams): `server` (client-facing connection loop)
//!   with `request`, `response` and `tunnel` beside it, `client` (to
//!   backends), and `fields`, `framing` that both sides share.
//! - `headers`, `body`: header rewriting and request bodies, shared by
//!   the HTTP/1.1 and HTTP/2 sides.
//! - `proxy/`: the request path (route, then forward with retries), with
//!   the request it forwards (`request`), the response body that flows back
//!   and what it releases (`response`) and the attempts at backends
//!   (`attempts`); `route`: host and path matching; `upstream`: per-worker
//!   connection pools.
//! - `control`: [`Control`], the state owner: pools and routes as a
//!   lock-free snapshot, API updates, health-check tasks.
//! - `pool`, `backend`: per-backend shared state (atomics).
//! - `pick/`: the balancing catalogue, one file per family (`p2c`,
//!   `least`, `round_robin`, `ring`, `maglev`, `consistent`, `random`).
//! - `breaker`, `outlier`: failure handling; `limits/`: admission, one
//!   file per limiter (`token_bucket`, `retry_budget`, `concurrency`,
//!   `admission`).
//! - `metrics`: per-worker counters and the latency histogram (`Metrics`);
//!   `clients`: requests per client prefix, lock-free per worker.
//! - `api`: the local HTTP API ([`ApiState`], [`router`], load sampling).
//! - [`sim`]: a pool and its picker on a simulated clock, for
//!   `boltz simulate servers`.

#![warn(missing_docs)]

mod api;
mod backend;
mod body;
mod breaker;
mod clients;
mod config;
mod control;
mod headers;
mod http1;
mod idle;
mod limits;
mod listen;
mod metrics;
mod outlier;
mod pick;
mod pool;
mod proxy;
mod route;
pub mod sim;
mod sniff;
mod upstream;
mod worker;

pub use api::{router, sample, ApiState, Rates};
pub use config::{from_json, valid_pool_name, validate_routes, Config, PoolConfig, RouteConfig};
pub use control::Control;
pub use listen::{bind, spawn_workers};
