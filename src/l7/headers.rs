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

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Removes hop-by-hop headers, including those `Connection` names. A `TE:
/// trailers` request header is kept (it is end-to-end in meaning for h2).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
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

/// `HTTP/1.1` → `1.1`, as `Via` writes the received protocol.
fn via_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Appends `value` to header `name` (a comma-separated list).
fn append_list(h: &mut HeaderMap, name: &HeaderName, value: &str) {
    let joined = match h.get(name).and_then(|v| v.to_str().ok()) {
        Some(old) if !old.is_empty() => format!("{old}, {value}"),
        _ => value.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        h.insert(name, v);
    }
}

/// Adds the forwarding headers to a request received from `client` over
/// `version`, by scheme `proto` (`http` or `https`), for `host`.
pub fn add_forwarding(
    h: &mut HeaderMap,
    client: IpAddr,
    proto: &str,
    host: Option<&str>,
    version: Version,
    via: &str,
) {
    let ip = client.to_canonical();
    append_list(h, &X_FORWARDED_FOR, &ip.to_string());
    h.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(if proto == "https" { "https" } else { "http" }),
    );
    let node = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut fwd = format!("for={node};proto={proto}");
    if let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"')) {
        fwd.push_str(";host=\"");
        fwd.push_str(host);
        fwd.push('"');
    }
    append_list(h, &FORWARDED, &fwd);
    append_list(h, &VIA, &format!("{} {via}", via_version(version)));
}

/// Adds `Via` to a response that came back over `version`.
pub fn add_via(h: &mut HeaderMap, version: Version, via: &str) {
    append_list(h, &VIA, &format!("{} {via}", via_version(version)));
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
        add_forwarding(
            &mut h,
            "2001:db8::5".parse().unwrap(),
            "https",
            Some("example.com"),
            Version::HTTP_2,
            "boltz",
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 2001:db8::5");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::5]\";proto=https;host=\"example.com\""
        );
        assert_eq!(h["via"], "1.1 edge, 2 boltz");
        let mut v4 = HeaderMap::new();
        add_forwarding(
            &mut v4,
            "::ffff:10.0.0.7".parse().unwrap(),
            "http",
            None,
            Version::HTTP_11,
            "boltz",
        );
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
