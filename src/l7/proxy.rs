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

use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, COOKIE, HOST, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use super::backend::{now_ns, InFlight};
use super::body::{BoxError, ReqBody};
use super::config::HashOn;
use super::h1;
use super::headers;
use super::limits::ConcurrencyPermit;
use super::outlier::{self, Outcome};
use super::pick::{hash_key, PickContext};
use super::pool::Pool;
use super::state::L7;
use super::upstream::{self, Conn};

thread_local! {
    /// This thread's worker number (per-worker picker state, stats shard).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `n`.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// The calling thread's worker number (0 on other threads).
pub fn worker() -> usize {
    WORKER.with(Cell::get)
}

/// Per client connection.
#[derive(Debug)]
pub struct ClientConn {
    pub l7: Arc<L7>,
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// This client's forwarding header values.
    pub forwarding: headers::Forwarding,
}

impl ClientConn {
    pub fn new(l7: Arc<L7>, peer: SocketAddr, tls: bool) -> ClientConn {
        let scheme = if tls { "https" } else { "http" };
        ClientConn {
            l7,
            peer,
            scheme,
            forwarding: headers::Forwarding::new(peer.ip(), scheme),
        }
    }
}

/// Everything a finished response must release, in one place.
struct Done {
    _in_flight: InFlight,
    _admission: Option<tokio::sync::OwnedSemaphorePermit>,
    l7: Arc<L7>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.l7.stats.here().in_flight.fetch_sub(1, Relaxed);
    }
}

/// Where a response body comes from.
enum Inner {
    /// A backend over HTTP/1.1 (our client; the connection rides along).
    H1(h1::ResponseBody),
    /// A backend over h2c (hyper's client).
    H2(Incoming),
    /// An answer boltz made itself.
    Local(Full<Bytes>),
}

/// A response body: the backend's, streamed, or one boltz wrote.
pub struct ProxyBody {
    inner: Inner,
    done: Option<Done>,
}

impl ProxyBody {
    fn local(text: &str) -> Self {
        ProxyBody {
            inner: Inner::Local(Full::new(Bytes::copy_from_slice(text.as_bytes()))),
            done: None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r: Poll<Option<Result<Frame<Bytes>, BoxError>>> = match &mut this.inner {
            Inner::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::H2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Local(f) => Pin::new(f).poll_frame(cx).map_err(|e| match e {}),
        };
        let ended = match &r {
            Poll::Ready(None) => true,
            // hyper stops polling once a body of known length says it has
            // ended, so the last frame is the end too.
            Poll::Ready(Some(Ok(_))) => this.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                this.done = None;
                false
            }
            Poll::Pending => false,
        };
        if ended {
            // Read to the end: the connection can serve another request.
            if let Inner::H1(b) = &mut this.inner {
                if let Some(c) = b.take_reusable() {
                    upstream::checkin(c);
                }
            }
            this.done = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1(b) => b.is_end_stream(),
            Inner::H2(b) => b.is_end_stream(),
            Inner::Local(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1(b) => b.size_hint(),
            Inner::H2(b) => b.size_hint(),
            Inner::Local(f) => f.size_hint(),
        }
    }
}

fn local(l7: &L7, code: StatusCode, text: &str) -> Response<ProxyBody> {
    l7.stats.count_status(code.as_u16());
    let mut r = Response::new(ProxyBody::local(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// One request, from either client-side server (hyper's for HTTP/2,
/// [`super::serve1`] for HTTP/1.1), to its response.
pub async fn handle(c: &ClientConn, req: Request<ReqBody>) -> Response<ProxyBody> {
    let l7 = &c.l7;
    let started = Instant::now();
    l7.stats.here().requests.fetch_add(1, Relaxed);
    let snap = l7.snapshot.load();
    let host = headers::request_host(req.uri(), req.headers()).and_then(headers::Host::new);
    let host_name = host.as_ref().map(headers::Host::as_str);
    let Some(route) = snap.routes.find(host_name, req.uri().path()) else {
        l7.stats.here().no_route.fetch_add(1, Relaxed);
        return local(
            l7,
            StatusCode::NOT_FOUND,
            "no route for this host and path\n",
        );
    };
    if let Some(limiter) = &route.limiter {
        if let Err(wait) = limiter.try_take(now_ns()) {
            l7.stats.here().rate_limited.fetch_add(1, Relaxed);
            let mut r = local(l7, StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded\n");
            r.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(super::limits::retry_after_secs(wait)),
            );
            return r;
        }
    }
    let Some(pool) = snap.pools.get(&route.pool).cloned() else {
        return local(l7, StatusCode::BAD_GATEWAY, "route names a missing pool\n");
    };
    drop(snap);
    let resp = match tokio::time::timeout(l7.config.timeouts.request, forward(c, &pool, req, host))
        .await
    {
        Ok(r) => r,
        Err(_) => {
            l7.stats.here().timeouts.fetch_add(1, Relaxed);
            local(l7, StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
        }
    };
    l7.stats
        .here()
        .latency
        .record_ns(started.elapsed().as_nanos() as u64);
    resp
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The affinity hash of a request for the hashing algorithms.
fn affinity<B>(pool: &Pool, peer: SocketAddr, req: &Request<B>) -> Option<u64> {
    if !pool.config.lb.uses_hash() {
        return None;
    }
    match pool.config.hash_on.as_ref().unwrap_or(&HashOn::ClientIp) {
        HashOn::ClientIp => Some(match peer.ip().to_canonical() {
            std::net::IpAddr::V4(a) => hash_key(&a.octets()),
            std::net::IpAddr::V6(a) => hash_key(&a.octets()),
        }),
        HashOn::Header(name) => req
            .headers()
            .get(name.as_str())
            .map(|v| hash_key(v.as_bytes())),
        HashOn::Cookie(name) => req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| hash_key(v.as_bytes())),
    }
}

/// The headers for an HTTP/1.1 upstream: a `Host` is required there (an
/// h2 client gives the authority in the URI instead).
fn h1_headers(uri: &Uri, mut headers: http::HeaderMap, host: Option<&str>) -> http::HeaderMap {
    if !headers.contains_key(HOST) {
        let authority = uri.authority().map(|a| a.as_str()).or(host);
        if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(HOST, a);
        }
    }
    headers
}

/// The request for an h2c upstream: absolute URI, no `Host`.
fn h2_request(
    method: Method,
    uri: &Uri,
    mut headers: http::HeaderMap,
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

/// Most backends one request tries (first attempt and retries).
const MAX_TRIES: usize = 8;

async fn forward(
    c: &ClientConn,
    pool: &Pool,
    req: Request<ReqBody>,
    host: Option<headers::Host>,
) -> Response<ProxyBody> {
    let host = host.as_ref().map(headers::Host::as_str);
    let l7 = &c.l7;
    let hash = affinity(pool, c.peer, &req);
    let (mut parts, body) = req.into_parts();
    let version = parts.version;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::add_forwarding(&mut parts.headers, &c.forwarding, host, version, &l7.via);
    if pool.config.upstream == super::config::Upstream::Http1 {
        parts.headers = h1_headers(&parts.uri, std::mem::take(&mut parts.headers), host);
    }
    let replayable = idempotent(&parts.method) && body.is_end_stream();
    let mut body = Some(body);

    let now = now_ns();
    pool.retry.on_request(now);
    let mut limit: Option<ConcurrencyPermit> = None;
    if let Some(cl) = &pool.concurrency {
        match cl.try_acquire() {
            Some(p) => limit = Some(p),
            None => {
                l7.stats.here().overloaded.fetch_add(1, Relaxed);
                return local(
                    l7,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "pool at its concurrency limit\n",
                );
            }
        }
    }
    let worker = worker();
    let retries = pool.config.retry.retries;
    let mut tried = [usize::MAX; MAX_TRIES];
    let mut ntried = 0;
    let mut attempt = 0u32;
    let mut last_error = "no backend available (down, ejected, draining or breaker open)";
    // What to answer when no backend is left: overload (503) or failure (502).
    let mut give_up = StatusCode::SERVICE_UNAVAILABLE;
    loop {
        let now = now_ns();
        let ctx = PickContext {
            now,
            hash,
            exclude: &tried[..ntried],
            panic: pool.in_panic(),
            worker,
        };
        let picked = if ntried < MAX_TRIES {
            pool.picker.pick(&pool.backends, &ctx)
        } else {
            None
        };
        let Some(i) = picked else {
            l7.stats.here().no_backend.fetch_add(1, Relaxed);
            return local(l7, give_up, &format!("{last_error}\n"));
        };
        let b = &pool.backends[i];
        tried[ntried] = i;
        ntried += 1;
        if !b.breaker.on_start(now) {
            last_error = "circuit breaker open";
            continue;
        }
        let permit = match pool.admission[i].enter().await {
            Ok(p) => p,
            Err(_) => {
                l7.stats.here().overloaded.fetch_add(1, Relaxed);
                last_error = "backend at its in-flight limit, queue full";
                continue;
            }
        };
        let in_flight = b.start();
        l7.stats.here().in_flight.fetch_add(1, Relaxed);
        let done = || Done {
            _in_flight: in_flight,
            _admission: permit,
            l7: l7.clone(),
        };
        let sent_at = Instant::now();
        let may_retry = |attempt: u32| {
            if attempt >= retries {
                return false;
            }
            if pool.retry.try_retry(now_ns()) {
                l7.stats.here().retries.fetch_add(1, Relaxed);
                true
            } else {
                l7.stats.here().retries_refused.fetch_add(1, Relaxed);
                false
            }
        };
        let conn = upstream::checkout(
            b.addr,
            pool.config.upstream,
            l7.config.timeouts.connect,
            &l7.stats.here().upstream_connects,
        )
        .await;
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                drop(done());
                tracing::debug!(backend = %b.addr, error = %e, "connect failed");
                let now = now_ns();
                book(
                    pool,
                    b,
                    Outcome::ConnectFailure,
                    sent_at.elapsed().as_nanos() as u64,
                    now,
                );
                last_error = "could not connect to a backend";
                give_up = StatusCode::BAD_GATEWAY;
                l7.stats.here().upstream_errors.fetch_add(1, Relaxed);
                if may_retry(attempt) {
                    attempt += 1;
                    continue;
                }
                return local(
                    l7,
                    StatusCode::BAD_GATEWAY,
                    "could not connect to a backend\n",
                );
            }
        };
        let result: Result<Response<Inner>, BoxError> = match conn {
            // Our HTTP/1.1 client writes the head from a reference: no copy
            // is needed to keep it for a retry.
            Conn::H1(c) => {
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                c.send(&parts.method, pq, &parts.headers, body.take())
                    .await
                    .map(|r| r.map(Inner::H1))
                    .map_err(Into::into)
            }
            Conn::H2(mut s) => {
                // Keep a copy of the head only while a retry after sending
                // is possible.
                let headers = if replayable && attempt < retries {
                    parts.headers.clone()
                } else {
                    std::mem::take(&mut parts.headers)
                };
                let up_body = body.take().unwrap_or(ReqBody::Empty);
                let up = h2_request(parts.method.clone(), &parts.uri, headers, host, up_body);
                s.send_request(up)
                    .await
                    .map(|r| r.map(Inner::H2))
                    .map_err(Into::into)
            }
        };
        let rtt = sent_at.elapsed().as_nanos() as u64;
        let now = now_ns();
        match result {
            Ok(resp) => {
                let status = resp.status();
                let outcome = if status.is_server_error() {
                    Outcome::ServerError
                } else {
                    Outcome::Success
                };
                book(pool, b, outcome, rtt, now);
                if let Some(p) = limit.take() {
                    // Only overload signals shrink the window, not every 5xx.
                    let overload = matches!(
                        status,
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                    );
                    p.done(rtt, overload);
                }
                let retryable_status = matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                if retryable_status && replayable && may_retry(attempt) {
                    drop(done());
                    attempt += 1;
                    last_error = "backend answered 5xx";
                    give_up = StatusCode::BAD_GATEWAY;
                    continue;
                }
                let (mut rparts, rbody) = resp.into_parts();
                headers::strip_hop_by_hop(&mut rparts.headers);
                l7.via.add(&mut rparts.headers, rparts.version);
                rparts.version = version;
                l7.stats.count_status(status.as_u16());
                return Response::from_parts(
                    rparts,
                    ProxyBody {
                        inner: rbody,
                        done: Some(done()),
                    },
                );
            }
            Err(e) => {
                drop(done());
                tracing::debug!(backend = %b.addr, error = %e, "upstream request failed");
                book(pool, b, Outcome::Reset, rtt, now);
                l7.stats.here().upstream_errors.fetch_add(1, Relaxed);
                last_error = "backend failed the request";
                give_up = StatusCode::BAD_GATEWAY;
                if replayable && may_retry(attempt) {
                    attempt += 1;
                    continue;
                }
                return local(l7, StatusCode::BAD_GATEWAY, "backend failed the request\n");
            }
        }
    }
}

/// Books the outcome of one exchange with backend `b`: latency and failure
/// rate for the balancer, the breaker, and outlier detection.
fn book(pool: &Pool, b: &super::backend::Backend, outcome: Outcome, rtt_ns: u64, now: u64) {
    let failed = !matches!(outcome, Outcome::Success);
    b.record(
        rtt_ns,
        failed,
        now,
        pool.config.ewma_decay.as_nanos() as f64,
    );
    b.breaker.on_result(now, failed);
    if let Some(o) = &pool.config.outlier {
        if let Some(t) = outlier::record(o, &pool.backends, b, outcome, now) {
            tracing::warn!(pool = %pool.name, backend = %b.addr, ejected_for = ?t, "backend ejected");
        }
    }
}
