//! Header rewriting at the proxy boundary (RFC 9110 §7.6): hop-by-hop
//! headers (the fixed list and any named in `Connection`) are removed in
//! both directions; requests gain `X-Forwarded-For` (appended),
//! `X-Forwarded-Proto`, `Forwarded` (RFC 7239, appended) and `Via`;
//! responses gain `Via`.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, VIA};
use http::Version;

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
}

impl Forwarding {
    /// For a client at `client` speaking scheme `proto` (`http`/`https`).
    pub fn new(client: IpAddr, proto: &str) -> Forwarding {
        let ip = client.to_canonical();
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let https = proto == "https";
        Forwarding {
            xff: HeaderValue::from_str(&ip.to_string()).expect("an address is a header value"),
            forwarded: format!("for={node};proto={}", if https { "https" } else { "http" }),
            proto: HeaderValue::from_static(if https { "https" } else { "http" }),
        }
    }
}

/// `Via` values by received protocol version, built once from the name.
#[derive(Debug, Clone)]
pub struct Via {
    v10: HeaderValue,
    v11: HeaderValue,
    v2: HeaderValue,
    v3: HeaderValue,
}

impl Via {
    pub fn new(name: &str) -> Via {
        let v = |ver: &str| {
            HeaderValue::from_str(&format!("{ver} {name}"))
                .unwrap_or_else(|_| HeaderValue::from_static("1.1 boltz"))
        };
        Via {
            v10: v("1.0"),
            v11: v("1.1"),
            v2: v("2"),
            v3: v("3"),
        }
    }

    fn get(&self, version: Version) -> &HeaderValue {
        match version {
            Version::HTTP_09 | Version::HTTP_10 => &self.v10,
            Version::HTTP_2 => &self.v2,
            Version::HTTP_3 => &self.v3,
            _ => &self.v11,
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
    let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
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

/// A request's host, copied out of the request so the request can move on
/// without a heap allocation: hosts are short (a DNS name has at most 253
/// bytes; a longer one is not kept).
#[derive(Clone, Copy)]
pub struct Host {
    buf: [u8; 253],
    len: u8,
}

impl Host {
    pub fn new(s: &str) -> Option<Host> {
        let len = u8::try_from(s.len()).ok().filter(|&n| n <= 253)?;
        let mut buf = [0u8; 253];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(Host { buf, len })
    }

    pub fn as_str(&self) -> &str {
        // Copied from a &str whole, so always valid.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// The request's host without port, lower-cased: from the URI's authority
/// (HTTP/2, absolute-form) or the `Host` header.
pub fn request_host<'a>(uri: &'a http::Uri, h: &'a HeaderMap) -> Option<&'a str> {
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => h.get(HOST)?.to_str().ok()?,
    };
    let raw = raw.rsplit('@').next().unwrap_or(raw);
    Some(if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["te", "x-kept"]);
    }

    #[test]
    fn forwarding_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        h.insert("via", HeaderValue::from_static("1.1 edge"));
        let via = Via::new("boltz");
        let f = Forwarding::new("2001:db8::5".parse().unwrap(), "https");
        add_forwarding(&mut h, &f, Some("example.com"), Version::HTTP_2, &via);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 2001:db8::5");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::5]\";proto=https;host=\"example.com\""
        );
        assert_eq!(h["via"], "1.1 edge, 2 boltz");
        let mut v4 = HeaderMap::new();
        let f = Forwarding::new("::ffff:10.0.0.7".parse().unwrap(), "http");
        add_forwarding(&mut v4, &f, None, Version::HTTP_11, &via);
        assert_eq!(v4["forwarded"], "for=10.0.0.7;proto=http");
    }

    #[test]
    fn host_without_port() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("Example.com:8080"));
        assert_eq!(
            request_host(&"/x".parse().unwrap(), &h),
            Some("Example.com")
        );
        assert_eq!(
            request_host(&"http://[::1]:80/".parse().unwrap(), &h),
            Some("[::1]")
        );
    }
}
