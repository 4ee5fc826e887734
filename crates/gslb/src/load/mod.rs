//! Per-DC load: the `load = { … }` config ([`LoadConfig`]), the document a
//! feed answers ([`FeedReport`], in `report`), the poller that reads a DC's
//! feed ([`feed`]), and the pure [`LoadTracker`] that smooths samples, keeps
//! the feed's health and capacity while it is fresh, and falls back when
//! the feed is missing or stale.
//!
//! # Feed format
//!
//! `GET <load.url>` with `Accept: application/json` must answer 2xx with a
//! JSON object (at most 64 KiB). The producers are the DCs' agents and
//! `boltz serve --datacenter` (its `/v1/site`), which may grow the document,
//! so readers ignore fields they do not know and treat `null` as absent:
//!
//! ```json
//! { "utilisation": 0.62, "timestamp_unix_ms": 1735689600000 }
//! { "requests_per_second": 1840.5 }
//! { "utilisation": 0.42, "capacity": 9000, "health": "degraded",
//!   "reason": "pool web: 1 of 2 backends healthy", "seq": 123456 }
//! ```
//!
//! - `utilisation` (number ≥ 0): 0 = idle, 1 = at capacity; above 1 means
//!   overloaded and is kept, not clipped.
//! - `requests_per_second` (number ≥ 0): used only when `utilisation` is
//!   absent; divided by the document's `capacity`, else the DC's configured
//!   `capacity` (requests per second at utilisation 1). Without either this
//!   is an error.
//! - `capacity` (number > 0, requests/s): the DC's effective capacity.
//!   While the feed is fresh it replaces the declared `capacity` wherever
//!   capacity weighs a DC (global utilisation, temperature, the price
//!   step's fill-evenly target).
//! - `health` (`"up"`, `"degraded"` or `"down"`): `down` makes the DC
//!   unusable as a failed probe does; `degraded` keeps it usable with the
//!   shortened TTL; `up` has no effect. `reason` (string) says why.
//! - `seq` (integer ≥ 0): the producer's sample number. A document whose
//!   `seq` equals the last applied one's is not applied again, so nodes
//!   polling one producer at different rates take the same EWMA steps.
//!   Without it every poll is a sample.
//! - `timestamp_unix_ms` (optional, integer): when the value was measured.
//!   A sample older than `load.stale_after` by this host's clock is
//!   rejected, so an agent serving a frozen value counts as a dead feed.
//!   Timestamps in the future are accepted (clock skew).
//!
//! With no good sample for `stale_after` the feed is stale: its health and
//! capacity are forgotten (the probe alone decides, the declared capacity
//! applies) and the utilisation falls back.
//!
//! Anything else — not JSON, not an object, a negative, non-numeric or
//! out-of-range value, an unknown `health`, a `capacity` ≤ 0, or neither
//! `utilisation` nor `requests_per_second` — is an error whose message
//! names the field.

pub mod config;
pub mod feed;
pub mod report;
pub mod tracker;

pub use config::LoadConfig;
pub use feed::{client, spawn, Publish};
pub use report::{FeedHealth, FeedReport, ReportError};
pub use tracker::{LoadSource, LoadTracker};
