//! boltz's own HTTP/1.1 server side, the client-facing twin of
//! [`super::client`]: one task per connection reads a request head into
//! its buffer ([`super::request`]: parsed with `httparse`, header values
//! zero-copy slices of the head), hands the request to the proxy
//! ([`proxy::route`], [`proxy::forward`]) and writes the response back
//! ([`super::response`]), coalescing the head and whatever body is already
//! there into one write. Request bodies are streamed to the backend while
//! the response is being written, so a backend that answers before the
//! upload ends is not stuck. Against hyper's server this drops a
//! per-request timer, a dispatch state machine and a copy of every header,
//! which on loopback is what a proxy's CPU per request is made of.
//!
//! A request asking to switch protocols (WebSocket) that a backend
//! answers `101` turns the connection into a tunnel ([`super::tunnel`]).
//! A head that cannot be served gets its refusal and the connection is
//! closed gently ([`linger`]). Connections that open with the HTTP/2
//! preface never get here ([`crate::sniff`]).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use bytes::BytesMut;
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::fields::RawFields;
use super::request::{parse_head, pump, Head, Refusal};
use super::response::{refuse, write_response, Reply};
use super::tunnel::tunnel;
use super::READ_CHUNK;
use crate::body::ReqBody;
use crate::idle::Activity;
use crate::proxy::{self, ClientConn, Headers, Req};

/// What waiting for a request head ended with.
// Moved out once per request: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(Head),
    /// The client closed, or the server is shutting down between requests.
    Closed,
    Refused(Refusal),
}

/// The proxy's response to `req`, or a 504 once the connection's watcher
/// finds it out of time. A macro, not a function: the request's future
/// (kilobytes) is then made in place in the connection's future instead
/// of being copied through one more layer.
macro_rules! answer {
    ($c:expr, $activity:expr, $req:expr) => {{
        let req = $req;
        match proxy::route($c, &req) {
            Err(r) => *r,
            Ok(pool) => {
                let forward = std::pin::pin!(proxy::forward($c, &pool, req));
                match $activity.answer_within(forward).await {
                    Some(r) => r,
                    None => proxy::timed_out(&$c.l7),
                }
            }
        }
    }};
}

/// Serves HTTP/1.1 requests on `io` until the client or the server ends
/// the connection; `buf` holds bytes already read from it.
///
/// The phases of one request: [`next_head`], the exchange (body whole in
/// the buffer, or streamed while the response is written), then keep the
/// connection, shut it, or [`linger`]. Both exchanges stay in this
/// function: each makes the request's future in place (`answer!`), and
/// moving one into a helper `async fn` would copy that future, kilobytes,
/// once per request.
pub async fn serve<IO: AsyncRead + AsyncWrite + Unpin + Send>(
    c: &ClientConn,
    mut io: IO,
    mut buf: BytesMut,
    activity: &Activity,
) -> io::Result<()> {
    let mut wbuf = Vec::with_capacity(1024);
    let mut fields = RawFields::default();
    let via = &c.l7.via;
    loop {
        let head = match next_head(&mut io, &mut buf, &mut fields, activity).await? {
            Next::Head(h) => h,
            Next::Closed => return Ok(()),
            Next::Refused((status, why)) => {
                c.l7.metrics.count_status(status.as_u16());
                refuse(&mut io, &mut wbuf, status, why).await?;
                return linger(io).await;
            }
        };
        let Head {
            method,
            uri,
            version,
            body,
            mut keep_alive,
            expect_continue,
            upgrade,
        } = head;
        let head_only = method == Method::HEAD;
        let req = |body| Req {
            method,
            uri,
            version,
            headers: Headers::Raw(&fields),
            body,
            upgrade,
        };
        let mut body_read = true;
        if let Some(b) = body.take_whole(&mut buf) {
            let resp = answer!(c, activity, req(b));
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                // Only a request that asked gets one (the proxy makes any
                // other a 502); the connection is a tunnel from here on.
                return tunnel(io, &mut wbuf, via, resp, buf).await;
            }
            keep_alive &= !activity.closing();
            let to = Reply {
                wbuf: &mut wbuf,
                via,
                version,
                head_only,
                keep_alive,
            };
            keep_alive = write_response(&mut io, to, resp).await?;
        } else {
            if expect_continue && version == Version::HTTP_11 {
                io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            let (dec, length) = body.decoder();
            let (tx, rb) = ReqBody::stream(length);
            let (mut rd, mut wr) = tokio::io::split(&mut io);
            let body_done = AtomicBool::new(false);
            let pump = async {
                body_done.store(pump(&mut rd, &mut buf, dec, tx).await, Relaxed);
            };
            let wanted = keep_alive;
            let respond = async {
                let resp = answer!(c, activity, req(rb));
                // Only a response after the whole request body can leave
                // the connection ready for another request.
                let keep = wanted && !activity.closing() && body_done.load(Relaxed);
                let to = Reply {
                    wbuf: &mut wbuf,
                    via,
                    version,
                    head_only,
                    keep_alive: keep,
                };
                write_response(&mut wr, to, resp).await
            };
            tokio::pin!(pump, respond);
            let mut pumped = false;
            let kept = loop {
                tokio::select! {
                    () = &mut pump, if !pumped => pumped = true,
                    w = &mut respond => break w,
                }
            };
            keep_alive = kept?;
            body_read = body_done.load(Relaxed);
        }
        // The head shares the read buffer, which can then grow in place.
        fields.release();
        if !body_read {
            return linger(io).await;
        }
        if !keep_alive {
            return io.shutdown().await;
        }
    }
}

/// Waits for the next request head. While nothing of it has arrived the
/// connection may be closed by a shutdown ([`crate::idle::watch`]).
async fn next_head<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    fields: &mut RawFields,
    activity: &Activity,
) -> io::Result<Next> {
    if !buf.is_empty() {
        activity.head_begin();
    }
    loop {
        if !buf.is_empty() {
            match parse_head(buf, fields) {
                Ok(Some(h)) => {
                    activity.head_end();
                    return Ok(Next::Head(h));
                }
                Ok(None) => {}
                Err(r) => return Ok(Next::Refused(r)),
            }
        }
        let between = buf.is_empty();
        buf.reserve(READ_CHUNK);
        if between {
            if activity.closing() {
                return Ok(Next::Closed);
            }
            activity.set_between(true);
        }
        let n = io.read_buf(buf).await?;
        if n == 0 {
            return Ok(Next::Closed);
        }
        if between {
            activity.set_between(false);
            activity.head_begin();
        }
    }
}

/// Most a closing connection reads and drops of what the client still
/// sends, and how long it waits for it.
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes a connection whose client may still be sending (a refused head,
/// an unread body): shut our side, then read and drop what arrives for a
/// moment. Closing with unread bytes would make the kernel reset the
/// connection, and a reset can destroy the answer before the client reads
/// it (nginx's lingering close).
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) -> io::Result<()> {
    io.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}
