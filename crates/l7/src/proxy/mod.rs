//! One request through the proxy: route by host and path, apply the
//! route's rate limit, pick a backend (excluding ones already tried),
//! pass its breaker and admission gate, take a pooled connection, rewrite
//! headers and send the request with its body streamed. Connect failures
//! are retried on another backend for any method (nothing was sent);
//! resets and 502/503/504 answers are retried only for idempotent requests
//! without a body; every retry is paid from the pool's retry budget. The
//! response body streams back through [`ProxyBody`], which holds the
//! backend's in-flight count and the connection until the last byte, then
//! returns the connection to this worker's pool.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use http::header::{
    HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, RETRY_AFTER,
};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use tokio::sync::OwnedSemaphorePermit;

use super::backend::Backend;
use super::body::{BoxError, ReqBody};
use super::config::{HashOn, Upstream};
use super::control::Control;
use super::headers;
use super::http1::fields::Kind;
use super::pick::hash_key;
use super::pool::Pool;
use super::upstream::{self, Conn};
use boltz_core::clock::precise_ns;

mod attempts;
mod request;
mod response;

use attempts::{Attempts, Failure};
pub use request::{Headers, Req};
pub use response::ProxyBody;
use response::{Done, Inner};

/// Per client connection.
#[derive(Debug)]
pub struct ClientConn {
    pub l7: Arc<Control>,
    pub peer: SocketAddr,
    /// This client's forwarding header values.
    pub forwarding: headers::Forwarding,
}

impl ClientConn {
    pub fn new(l7: Arc<Control>, peer: SocketAddr, tls: bool) -> ClientConn {
        let scheme = if tls { "https" } else { "http" };
        ClientConn {
            l7,
            peer,
            forwarding: headers::Forwarding::new(peer.ip(), scheme),
        }
    }
}

/// Records the time to a response head in the latency histogram when
/// [`forward`] returns (or is dropped).
struct Timed<'a> {
    l7: &'a Control,
    started: u64,
    /// When the response head came, if the clock was read then already.
    ended: u64,
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        let ended = if self.ended != 0 {
            self.ended
        } else {
            precise_ns()
        };
        let took = ended.saturating_sub(self.started);
        self.l7.metrics.here().latency.record_ns(took);
    }
}

fn local(l7: &Control, code: StatusCode, text: &str) -> Response<ProxyBody> {
    l7.metrics.count_status(code.as_u16());
    let mut r = Response::new(ProxyBody::local(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Where a request goes: the pool of its route, or the answer when it
/// goes nowhere (no route, rate limited, a missing pool). Counts the
/// request.
// The answer is boxed: it is the rare path, and the common one should not
// carry its size.
pub fn route(c: &ClientConn, req: &Req<'_>) -> Result<Arc<Pool>, Box<Response<ProxyBody>>> {
    let l7 = &c.l7;
    l7.metrics.here().requests.fetch_add(1, Relaxed);
    l7.clients.count(c.peer.ip());
    let snap = l7.snapshot.load();
    let host = headers::request_host(&req.uri, req.headers.host_field());
    let Some(route) = snap.routes.find(host, req.uri.path()) else {
        l7.metrics.here().no_route.fetch_add(1, Relaxed);
        return Err(Box::new(local(
            l7,
            StatusCode::NOT_FOUND,
            "no route for this host and path\n",
        )));
    };
    if let Some(limiter) = &route.limiter {
        if let Err(wait) = limiter.try_take(precise_ns()) {
            l7.metrics.here().rate_limited.fetch_add(1, Relaxed);
            let mut r = local(l7, StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded\n");
            r.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(super::limits::retry_after_secs(wait)),
            );
            return Err(Box::new(r));
        }
    }
    snap.pools.get(&route.pool).cloned().ok_or_else(|| {
        let why = "route names a missing pool\n";
        Box::new(local(l7, StatusCode::BAD_GATEWAY, why))
    })
}

/// One request, from either client-side server (hyper's for HTTP/2,
/// [`super::http1::server`] for HTTP/1.1), to its response: [`route`], then
/// [`forward`]. The caller bounds its time.
pub async fn handle(c: &ClientConn, req: Req<'_>) -> Response<ProxyBody> {
    match route(c, &req) {
        Ok(pool) => forward(c, &pool, req).await,
        Err(r) => *r,
    }
}

/// The answer to a request that ran out of its time (`timeouts.request`).
pub fn timed_out(l7: &Control) -> Response<ProxyBody> {
    l7.metrics.here().timeouts.fetch_add(1, Relaxed);
    local(l7, StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
}

/// [`handle`] for an HTTP/2 stream: under its own request timer (an
/// HTTP/1.1 connection's watcher times its one request at a time
/// instead), and with an HTTP/1.1 backend's response fields made into the
/// header map hyper writes.
pub async fn handle_h2(c: &ClientConn, req: Request<ReqBody>) -> Response<ProxyBody> {
    let l7 = &c.l7;
    let mut resp =
        match tokio::time::timeout(l7.config.timeouts.request, handle(c, req.into())).await {
            Ok(r) => r,
            Err(_) => return timed_out(l7),
        };
    let map = resp.body().raw_head().map(|(raw, version)| {
        raw.to_map(2).map(|mut h| {
            headers::strip_hop_by_hop(&mut h);
            l7.via.add(&mut h, version);
            h
        })
    });
    match map {
        None => resp,
        Some(Ok(h)) => {
            *resp.headers_mut() = h;
            resp.body_mut().release_head();
            resp
        }
        Some(Err(why)) => {
            tracing::debug!(why, "backend response head not valid for HTTP/2");
            local(
                l7,
                StatusCode::BAD_GATEWAY,
                "backend sent a malformed response head\n",
            )
        }
    }
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The affinity hash of a request for the hashing algorithms.
fn affinity(pool: &Pool, peer: SocketAddr, headers: &Headers<'_>) -> Option<u64> {
    if !pool.config.lb.uses_hash() {
        return None;
    }
    match pool.config.hash_on.as_ref().unwrap_or(&HashOn::ClientIp) {
        HashOn::ClientIp => Some(match peer.ip().to_canonical() {
            std::net::IpAddr::V4(a) => hash_key(&a.octets()),
            std::net::IpAddr::V6(a) => hash_key(&a.octets()),
        }),
        HashOn::Header(name) => headers.get(name.as_str()).map(hash_key),
        HashOn::Cookie(name) => headers.cookie(name).map(hash_key),
    }
}

/// The request's host without port, borrowed where it can be: from the
/// target's authority, or the `Host` field of an HTTP/1.1 head (which
/// outlives the request). A `Host` in a header map is copied, as the map
/// is rewritten.
fn host_of<'u>(uri: &'u Uri, headers: &Headers<'u>) -> Option<Cow<'u, str>> {
    match *headers {
        Headers::Raw(r) => {
            headers::request_host(uri, r.values(Kind::Host).next()).map(Cow::Borrowed)
        }
        Headers::Map(_) if uri.authority().is_some() => {
            headers::request_host(uri, None).map(Cow::Borrowed)
        }
        Headers::Map(_) => {
            headers::request_host(uri, headers.host_field()).map(|h| Cow::Owned(h.to_owned()))
        }
    }
}

/// A `Host` for an HTTP/1.1 upstream, where one is required (an h2
/// client gives the authority in the URI instead).
fn ensure_host(uri: &Uri, headers: &mut HeaderMap, host: Option<&str>) {
    if !headers.contains_key(HOST) {
        let authority = uri.authority().map(|a| a.as_str()).or(host);
        if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(HOST, a);
        }
    }
}

/// Makes a request's fields a header map rewritten for the backend (all
/// but HTTP/1.1-to-HTTP/1.1, whose fields are rewritten as written out).
fn rewrite_map(
    c: &ClientConn,
    headers: &mut Headers<'_>,
    uri: &Uri,
    version: Version,
    host: Option<&str>,
    upstream: Upstream,
    no_body: bool,
) -> Result<(), &'static str> {
    let mut map = match headers {
        Headers::Raw(_) if upstream == Upstream::Http1 => return Ok(()),
        Headers::Raw(r) => {
            let mut m = r.to_map(6)?;
            // Already answered by boltz's HTTP/1.1 server.
            if m.get(EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
            {
                m.remove(EXPECT);
            }
            m
        }
        Headers::Map(m) => std::mem::take(m),
    };
    headers::strip_hop_by_hop(&mut map);
    headers::add_forwarding(&mut map, &c.forwarding, host, version, &c.l7.via);
    if upstream == Upstream::Http1 {
        ensure_host(uri, &mut map, host);
        // An empty body is sent as such, whatever length the head said.
        if no_body && map.contains_key(CONTENT_LENGTH) {
            map.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
    }
    *headers = Headers::Map(map);
    Ok(())
}

/// The request for an h2c upstream: absolute URI, no `Host`.
fn h2_request(
    method: Method,
    uri: &Uri,
    mut headers: HeaderMap,
    host: Option<&str>,
    body: ReqBody,
) -> Request<ReqBody> {
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
        })
        .or_else(|| host.map(String::from))
        .unwrap_or_else(|| "localhost".into());
    headers.remove(HOST);
    let mut r = Request::new(body);
    *r.method_mut() = method;
    *r.version_mut() = Version::HTTP_2;
    *r.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(pq)
        .build()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *r.headers_mut() = headers;
    r
}

/// One attempt's request for an h2c backend, from the header map
/// [`rewrite_map`] made for an h2c pool. The map is copied only while a
/// retry after sending is possible (`keep`); otherwise it and the body are
/// moved out.
fn h2_attempt(
    headers: &mut Headers<'_>,
    keep: bool,
    method: &Method,
    uri: &Uri,
    host: Option<&str>,
    body: &mut Option<ReqBody>,
) -> Result<Request<ReqBody>, BoxError> {
    let Headers::Map(m) = headers else {
        return Err("request fields not rewritten for HTTP/2".into());
    };
    let map = if keep { m.clone() } else { std::mem::take(m) };
    let up_body = body.take().unwrap_or(ReqBody::Empty);
    Ok(h2_request(method.clone(), uri, map, host, up_body))
}

/// Most backends one request tries (first attempt and retries).
const MAX_TRIES: usize = 8;

/// Sends a routed request to a backend of `pool` (retrying on others as
/// the pool allows) and returns the response, its body still streaming.
///
/// Phases: prepare the request once (affinity key, host, header rewrite),
/// pass the pool's concurrency gate, then one attempt per turn of the
/// loop: [`Attempts::pick`], breaker and admission, checkout, send, and
/// [`Attempts::answered`] or [`Attempts::failed`] to book the outcome and
/// decide between answering and trying again. The awaits stay here: the
/// checkout and send futures are made in place in this future, where a
/// helper `async fn` would copy them once per attempt.
pub async fn forward(c: &ClientConn, pool: &Pool, req: Req<'_>) -> Response<ProxyBody> {
    let mut timed = Timed {
        l7: &c.l7,
        started: precise_ns(),
        ended: 0,
    };
    let l7 = &c.l7;
    let hash = affinity(pool, c.peer, &req.headers);
    let Req {
        method,
        uri,
        version,
        mut headers,
        body,
        upgrade,
    } = req;
    // A switch needs an HTTP/1.1 backend; elsewhere `Upgrade` is dropped
    // like any hop-by-hop field.
    let upgrade = upgrade && pool.config.upstream == Upstream::Http1;
    let host = host_of(&uri, &headers);
    let host = host.as_deref();
    let no_body = body.is_end_stream();
    let upstream = pool.config.upstream;
    if let Err(why) = rewrite_map(c, &mut headers, &uri, version, host, upstream, no_body) {
        return local(l7, StatusCode::BAD_REQUEST, &format!("{why}\n"));
    }
    let replayable = idempotent(&method) && body.is_end_stream();
    let mut body = Some(body);

    pool.retry.on_request(timed.started);
    let Some(mut tries) = Attempts::admit(l7, pool, version, upgrade, replayable) else {
        l7.metrics.here().overloaded.fetch_add(1, Relaxed);
        let why = "pool at its concurrency limit\n";
        return local(l7, StatusCode::SERVICE_UNAVAILABLE, why);
    };
    loop {
        // The first attempt reads no clock of its own.
        let now = if tries.ntried == 0 {
            timed.started
        } else {
            precise_ns()
        };
        let Some(i) = tries.pick(now, hash) else {
            return tries.exhausted();
        };
        let b = &pool.backends[i];
        if !b.breaker.on_start(now) {
            tries.last_error = "circuit breaker open";
            continue;
        }
        let permit = match pool.admission[i].enter().await {
            Ok(p) => p,
            Err(_) => {
                l7.metrics.here().overloaded.fetch_add(1, Relaxed);
                tries.last_error = "backend at its in-flight limit, queue full";
                continue;
            }
        };
        let done = count_in(l7, b, permit);
        let conn = upstream::checkout(
            b.addr,
            pool.config.upstream,
            l7.config.timeouts.connect,
            &l7.metrics.here().upstream_connects,
        )
        .await;
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                drop(done);
                tracing::debug!(backend = %b.addr, error = %e, "connect failed");
                let failed_at = precise_ns();
                let took = failed_at.saturating_sub(now);
                match tries.failed(b, Failure::Connect, took, failed_at) {
                    None => continue,
                    Some(r) => return r,
                }
            }
        };
        // The latency the balancer learns is the exchange's, not a new
        // connection's handshake: a backend whose first request paid for
        // a connect would otherwise keep a PeakEWMA peak, and lose its
        // share, for seconds.
        let sent_at = precise_ns();
        let result: Result<Response<Inner>, BoxError> = match conn {
            // Our HTTP/1.1 client writes the head from a reference: no copy
            // is needed to keep it for a retry.
            Conn::H1(conn) => {
                let pq = uri.path_and_query().map_or("/", |p| p.as_str());
                let fields = h1_fields(c, &headers, &uri, host, version, upgrade);
                conn.send(&method, pq, fields, headers.has_length(), body.take())
                    .await
                    .map(|r| r.map(Inner::H1))
                    .map_err(Into::into)
            }
            Conn::H2(mut s) => {
                let keep = tries.may_resend();
                match h2_attempt(&mut headers, keep, &method, &uri, host, &mut body) {
                    Ok(up) => s
                        .send_request(up)
                        .await
                        .map(|r| r.map(Inner::H2))
                        .map_err(Into::into),
                    Err(e) => Err(e),
                }
            }
        };
        let now = precise_ns();
        let rtt = now.saturating_sub(sent_at);
        timed.ended = now;
        let answer = match result {
            Ok(resp) => tries.answered(b, resp, rtt, now, done),
            Err(e) => {
                drop(done);
                tracing::debug!(backend = %b.addr, error = %e, "upstream request failed");
                tries.failed(b, Failure::Exchange, rtt, now)
            }
        };
        if let Some(r) = answer {
            return r;
        }
    }
}

/// Counts the request in at backend `b` and in this worker's gauge; the
/// [`Done`] returned counts it out again, with the admission permit, when
/// it is dropped: at the end of the response body, on a failure, or when
/// the request's future is dropped mid-flight (a 504 or a client that went
/// away), so the gauge cannot creep.
fn count_in(l7: &Arc<Control>, b: &Arc<Backend>, permit: Option<OwnedSemaphorePermit>) -> Done {
    let in_flight = b.start();
    l7.metrics.here().in_flight.fetch_add(1, Relaxed);
    Done {
        _in_flight: in_flight,
        _admission: permit,
        l7: l7.clone(),
    }
}

/// Writes the field lines of the request head for an HTTP/1.1 backend:
/// fields as received are rewritten as they are written
/// ([`headers::write_request`]); a map was rewritten already.
fn h1_fields<'r>(
    c: &'r ClientConn,
    headers: &'r Headers<'r>,
    uri: &'r Uri,
    host: Option<&'r str>,
    version: Version,
    upgrade: bool,
) -> impl FnOnce(&mut Vec<u8>) + 'r {
    move |out| match headers {
        Headers::Raw(r) => {
            let rewrite = headers::Rewrite {
                forwarding: &c.forwarding,
                host,
                authority: uri.authority().map(|a| a.as_str()),
                version,
                via: &c.l7.via,
                upgrade,
            };
            headers::write_request(out, r, &rewrite)
        }
        Headers::Map(h) => headers::write_map(out, h),
    }
}
