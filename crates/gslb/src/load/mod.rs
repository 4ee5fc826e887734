//! Per-DC load: the `load = { … }` config ([`LoadConfig`]), the poller that
//! reads a DC's utilisation feed ([`feed`]), and the pure [`LoadTracker`]
//! that smooths samples and falls back when the feed is missing or stale.
//!
//! # Feed format
//!
//! `GET <load.url>` with `Accept: application/json` must answer 2xx with a
//! JSON object (at most 64 KiB). The producers are the DCs' agents and,
//! later, boltz's own L4/L7 components, which will grow the document, so
//! readers ignore fields they do not know and treat `null` as absent:
//!
//! ```json
//! { "utilisation": 0.62, "timestamp_unix_ms": 1735689600000 }
//! { "requests_per_second": 1840.5 }
//! ```
//!
//! - `utilisation` (number ≥ 0): 0 = idle, 1 = at capacity; above 1 means
//!   overloaded and is kept, not clipped.
//! - `requests_per_second` (number ≥ 0): used only when `utilisation` is
//!   absent; divided by the DC's configured `capacity` (requests per second
//!   at utilisation 1). Without a capacity this is an error.
//! - `timestamp_unix_ms` (optional, integer): when the value was measured.
//!   A sample older than `load.stale_after` by this host's clock is
//!   rejected, so an agent serving a frozen value counts as a dead feed.
//!   Timestamps in the future are accepted (clock skew).
//!
//! Anything else — not JSON, not an object, a negative, non-numeric or
//! out-of-range value, or neither `utilisation` nor `requests_per_second` —
//! is an error whose message names the field.

pub mod config;
pub mod feed;
pub mod tracker;

pub use config::LoadConfig;
pub use feed::{client, spawn};
pub use tracker::{LoadSource, LoadTracker};
