//! HTTP/1.1, boltz's own on both sides (hyper serves HTTP/2 clients and
//! h2c upstreams). Heads are parsed in place with `httparse` and kept as
//! bytes; between two HTTP/1.1 sides a head goes through without a
//! `HeaderMap` being built.
//!
//! - `server`: the client-facing side, one connection's loop, with its
//!   phases beside it: `request` (read and check a request head, pump its
//!   body), `response` (write a response back), `tunnel` (after a `101`).
//! - `client`: the backend side, a kept-alive connection sending requests
//!   and streaming responses back.
//! - `fields`, `framing`: what both sides share: a head's fields as
//!   received ([`fields::RawFields`]) and message framing (limits,
//!   `Connection`, chunked coding).
//!
//! Shared with the HTTP/2 side and so outside this folder: header
//! rewriting (`crate::headers`) and request bodies (`crate::body`).

pub(crate) mod client;
pub(crate) mod fields;
pub(crate) mod framing;
mod request;
mod response;
pub(crate) mod server;
mod tunnel;

/// Read size of both sides' connections (and of protocol sniffing).
pub(crate) const READ_CHUNK: usize = 16 * 1024;
