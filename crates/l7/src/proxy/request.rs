//! The request as the proxy forwards it: its method, target, version and
//! body, and its header fields as the client side delivered them (a map
//! from the HTTP/2 server, or the raw fields of an HTTP/1.1 head, which
//! are only rewritten as they are written out).

use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, COOKIE, HOST};
use http::{Method, Request, Uri, Version};

use crate::body::ReqBody;
use crate::http1::fields::{Kind, RawFields};

/// A request's header fields as the client side delivered them.
#[derive(Debug)]
pub enum Headers<'a> {
    /// From hyper's HTTP/2 server.
    Map(HeaderMap),
    /// From boltz's HTTP/1.1 server, as received: rewritten only as they
    /// are written out to an HTTP/1.1 backend.
    Raw(&'a RawFields),
}

impl Headers<'_> {
    pub(super) fn host_field(&self) -> Option<&[u8]> {
        match self {
            Headers::Map(h) => h.get(HOST).map(HeaderValue::as_bytes),
            Headers::Raw(r) => r.values(Kind::Host).next(),
        }
    }

    /// Whether the fields give a `Content-Length`.
    pub(super) fn has_length(&self) -> bool {
        match self {
            Headers::Raw(r) => r.has(Kind::ContentLength),
            Headers::Map(h) => h.contains_key(CONTENT_LENGTH),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&[u8]> {
        match self {
            Headers::Map(h) => h.get(name).map(HeaderValue::as_bytes),
            Headers::Raw(r) => r.get(name),
        }
    }

    /// The value of cookie `name`.
    pub(super) fn cookie(&self, name: &str) -> Option<&[u8]> {
        match self {
            Headers::Map(h) => h
                .get_all(COOKIE)
                .iter()
                .find_map(|v| cookie_in(v.as_bytes(), name)),
            Headers::Raw(r) => r.values(Kind::Cookie).find_map(|v| cookie_in(v, name)),
        }
    }
}

/// The value of cookie `name` in a `Cookie` field's value `v`.
fn cookie_in<'v>(v: &'v [u8], name: &str) -> Option<&'v [u8]> {
    v.split(|&b| b == b';')
        .filter_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=')?;
            Some((kv[..eq].trim_ascii(), kv[eq + 1..].trim_ascii()))
        })
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| v)
}

/// A request as the proxy forwards it.
#[derive(Debug)]
pub struct Req<'a> {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: Headers<'a>,
    pub body: ReqBody,
    /// An HTTP/1.1 client asks to switch protocols (`Connection: upgrade`
    /// with `Upgrade`, e.g. WebSocket): passed on to an HTTP/1.1 backend,
    /// whose `101` makes the connection a tunnel.
    pub upgrade: bool,
}

impl From<Request<ReqBody>> for Req<'static> {
    fn from(r: Request<ReqBody>) -> Self {
        let (p, body) = r.into_parts();
        Req {
            method: p.method,
            uri: p.uri,
            version: p.version,
            headers: Headers::Map(p.headers),
            body,
            upgrade: false,
        }
    }
}
