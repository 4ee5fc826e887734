//! Header rewriting at the proxy boundary (RFC 9110 §7.6): hop-by-hop
//! headers (the fixed list and any named in `Connection`) are removed in
//! both directions; requests gain `X-Forwarded-For` (appended),
//! `X-Forwarded-Proto`, `Forwarded` (RFC 7239, appended) and `Via`;
//! responses gain `Via`. The same rules apply to a `HeaderMap` (a side
//! speaks HTTP/2) and, written straight out as lines, to the fields of an
//! HTTP/1.1 head as received ([`write_request`], [`write_response`]).
//! Both protocols use it, so it sits beside `http1/` rather than in it.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, VIA};
use http::Version;

use super::http1::fields::{Kind, RawFields};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Every hop-by-hop name, for the quick check.
static HOP_NAMES: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Removes hop-by-hop headers, including those `Connection` names. A `TE:
/// trailers` request header is kept (it is end-to-end in meaning for h2).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages carry none: one pass over the names, no lookups.
    if !h.keys().any(|k| HOP_NAMES.iter().any(|n| n == k)) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if n != TE {
            h.remove(&n);
        }
    }
    let keep_te = h
        .get(TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("trailers"));
    for n in HOP_BY_HOP {
        if n == "te" && keep_te {
            continue;
        }
        h.remove(n);
    }
    h.remove(http::header::UPGRADE);
}

/// The forwarding headers' values for one client connection, computed
/// once when it is accepted rather than per request.
#[derive(Debug, Clone)]
pub struct Forwarding {
    xff: HeaderValue,
    /// `for=…;proto=…`
    forwarded: String,
    proto: HeaderValue,
    /// The three as field lines, for a request that has none of its own:
    /// `x-forwarded-for`, `x-forwarded-proto`, then `forwarded` without
    /// its line end (a `host=` may follow).
    lines: Vec<u8>,
}

impl Forwarding {
    /// For a client at `client` speaking scheme `proto` (`http`/`https`).
    pub fn new(client: IpAddr, proto: &str) -> Forwarding {
        let ip = client.to_canonical();
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let proto = if proto == "https" { "https" } else { "http" };
        let forwarded = format!("for={node};proto={proto}");
        let lines = format!(
            "x-forwarded-for: {ip}\r\nx-forwarded-proto: {proto}\r\nforwarded: {forwarded}"
        );
        Forwarding {
            xff: HeaderValue::from_str(&ip.to_string()).expect("an address is a header value"),
            forwarded,
            proto: HeaderValue::from_static(proto),
            lines: lines.into_bytes(),
        }
    }
}

/// `Via` values by received protocol version, built once from the name.
#[derive(Debug, Clone)]
pub struct Via {
    /// For HTTP/1.0, 1.1, 2 and 3.
    values: [HeaderValue; 4],
    /// The same as whole field lines.
    lines: [Vec<u8>; 4],
}

impl Via {
    pub fn new(name: &str) -> Via {
        let values = ["1.0", "1.1", "2", "3"].map(|ver| {
            HeaderValue::from_str(&format!("{ver} {name}"))
                .unwrap_or_else(|_| HeaderValue::from_static("1.1 boltz"))
        });
        let lines = values
            .clone()
            .map(|v| [b"via: ", v.as_bytes(), b"\r\n"].concat());
        Via { values, lines }
    }

    fn index(version: Version) -> usize {
        match version {
            Version::HTTP_09 | Version::HTTP_10 => 0,
            Version::HTTP_2 => 2,
            Version::HTTP_3 => 3,
            _ => 1,
        }
    }

    fn get(&self, version: Version) -> &HeaderValue {
        &self.values[Self::index(version)]
    }

    /// Writes the `Via` line for a message received over `version` whose
    /// fields `raw` may already have some.
    fn write(&self, out: &mut Vec<u8>, raw: &RawFields, version: Version) {
        if raw.has(Kind::Via) {
            list(out, b"via", raw, Kind::Via, |o| {
                o.extend_from_slice(self.get(version).as_bytes())
            });
        } else {
            out.extend_from_slice(&self.lines[Self::index(version)]);
        }
    }

    /// Appends this proxy to `Via` for a message received over `version`.
    pub fn add(&self, h: &mut HeaderMap, version: Version) {
        let v = self.get(version);
        append_value(h, &VIA, v);
    }
}

/// Appends `v` to list header `name`, without allocating when it is new.
fn append_value(h: &mut HeaderMap, name: &HeaderName, v: &HeaderValue) {
    match h
        .get(name)
        .and_then(|old| old.to_str().ok())
        .filter(|o| !o.is_empty())
    {
        Some(old) => {
            let joined = format!("{old}, {}", v.to_str().unwrap_or_default());
            if let Ok(j) = HeaderValue::from_str(&joined) {
                h.insert(name, j);
            }
        }
        None => {
            h.insert(name, v.clone());
        }
    }
}

/// Adds the forwarding headers to a request from the connection `f`
/// describes, received over `version`, for `host`.
pub fn add_forwarding(
    h: &mut HeaderMap,
    f: &Forwarding,
    host: Option<&str>,
    version: Version,
    via: &Via,
) {
    append_value(h, &X_FORWARDED_FOR, &f.xff);
    h.insert(&X_FORWARDED_PROTO, f.proto.clone());
    // `Forwarded`, appended to any earlier one, built in one buffer.
    let host = host.filter(|h| forwardable_host(h));
    let old = h
        .get(&FORWARDED)
        .map(HeaderValue::as_bytes)
        .filter(|o| !o.is_empty());
    let mut v = bytes::BytesMut::with_capacity(
        old.map_or(0, |o| o.len() + 2) + f.forwarded.len() + host.map_or(0, |h| h.len() + 8),
    );
    if let Some(old) = old {
        v.extend_from_slice(old);
        v.extend_from_slice(b", ");
    }
    v.extend_from_slice(f.forwarded.as_bytes());
    if let Some(host) = host {
        v.extend_from_slice(b";host=\"");
        v.extend_from_slice(host.as_bytes());
        v.extend_from_slice(b"\"");
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(v.freeze()) {
        h.insert(&FORWARDED, v);
    }
    via.add(h, version);
}

/// One field line.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A header map's fields as lines (an HTTP/2 side's fields, or trailers,
/// written for an HTTP/1.1 one).
pub fn write_map(out: &mut Vec<u8>, map: &HeaderMap) {
    for (name, value) in map {
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// A list field: the values of `kind` in `raw`, then ours (written by
/// `ours`), comma-separated.
fn list(
    out: &mut Vec<u8>,
    name: &[u8],
    raw: &RawFields,
    kind: Kind,
    ours: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for old in raw.values(kind).filter(|v| !v.is_empty()) {
        out.extend_from_slice(old);
        out.extend_from_slice(b", ");
    }
    ours(out);
    out.extend_from_slice(b"\r\n");
}

/// Whether `Connection` in `raw` names the field `name` (making it
/// hop-by-hop).
fn named_by_connection(raw: &RawFields, name: &[u8]) -> bool {
    raw.values(Kind::Connection)
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
}

/// Whether a received field of `kind` named `name` goes on unchanged;
/// `Upgrade` does when a protocol switch is being forwarded.
fn passes(raw: &RawFields, name: &[u8], kind: Kind, upgrade: bool) -> bool {
    if kind == Kind::Upgrade {
        return upgrade;
    }
    let hop = matches!(
        kind,
        Kind::Connection | Kind::TransferEncoding | Kind::Te | Kind::HopByHop | Kind::Via
    );
    let named = raw.has(Kind::Connection) && named_by_connection(raw, name);
    !(hop || named)
}

/// How a request head is rewritten for an HTTP/1.1 backend.
pub struct Rewrite<'a> {
    pub forwarding: &'a Forwarding,
    /// The request's host, for `Forwarded`'s `host=`.
    pub host: Option<&'a str>,
    /// The request target's authority, for a `Host` if the head has none.
    pub authority: Option<&'a str>,
    /// The version the request came in.
    pub version: Version,
    pub via: &'a Via,
    /// The client asks to switch protocols (`Upgrade`) and the switch is
    /// passed on.
    pub upgrade: bool,
}

/// Writes the fields of an HTTP/1.1 request head `raw` for an HTTP/1.1
/// backend, one line each: hop-by-hop fields dropped (but `Upgrade`, with
/// `Connection: upgrade`, for a protocol switch), `Expect: 100-continue`
/// (already answered) dropped, `TE: trailers` kept, the forwarding fields
/// appended to any received ones, and a `Host` from the request target's
/// authority if the head had none.
pub fn write_request(out: &mut Vec<u8>, raw: &RawFields, r: &Rewrite<'_>) {
    let f = r.forwarding;
    raw.write_lines(out, |name, value, kind| match kind {
        Kind::Te => value.eq_ignore_ascii_case(b"trailers"),
        Kind::Expect => !value.eq_ignore_ascii_case(b"100-continue"),
        Kind::XForwardedFor | Kind::XForwardedProto | Kind::Forwarded => false,
        _ => passes(raw, name, kind, r.upgrade),
    });
    if r.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    if !raw.has(Kind::Host) {
        if let Some(a) = r.authority {
            line(out, b"host", a.as_bytes());
        }
    }
    let host_param = |o: &mut Vec<u8>| {
        if let Some(h) = r.host.filter(|h| forwardable_host(h)) {
            o.extend_from_slice(b";host=\"");
            o.extend_from_slice(h.as_bytes());
            o.push(b'"');
        }
    };
    if raw.has_any(&[Kind::XForwardedFor, Kind::Forwarded]) {
        list(out, b"x-forwarded-for", raw, Kind::XForwardedFor, |o| {
            o.extend_from_slice(f.xff.as_bytes())
        });
        line(out, b"x-forwarded-proto", f.proto.as_bytes());
        list(out, b"forwarded", raw, Kind::Forwarded, |o| {
            o.extend_from_slice(f.forwarded.as_bytes());
            host_param(o);
        });
    } else {
        out.extend_from_slice(&f.lines);
        host_param(out);
        out.extend_from_slice(b"\r\n");
    }
    r.via.write(out, raw, r.version);
}

/// Writes the fields of an HTTP/1.1 response head `raw` (received over
/// `version`) for an HTTP/1.1 client: hop-by-hop fields dropped (but a
/// `101`'s `Upgrade`, with `Connection: upgrade`, when `upgrade`) and this
/// proxy appended to `Via`. Framing fields are the caller's.
pub fn write_response(
    out: &mut Vec<u8>,
    raw: &RawFields,
    version: Version,
    via: &Via,
    upgrade: bool,
) {
    raw.write_lines(out, |name, _, kind| passes(raw, name, kind, upgrade));
    if upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    via.write(out, raw, version);
}

/// Whether `host` can go into `Forwarded` as a quoted string.
fn forwardable_host(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

/// The request's host without port: from the URI's authority (HTTP/2,
/// absolute-form) or else the `Host` field's value `field`.
pub fn request_host<'a>(uri: &'a http::Uri, field: Option<&'a [u8]>) -> Option<&'a str> {
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => std::str::from_utf8(field?).ok()?,
    };
    let raw = raw.rsplit('@').next().unwrap_or(raw);
    Some(if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    })
}

#[cfg(test)]
mod tests;
