//! boltz's own HTTP/1.1 server side, the client-facing twin of [`super::h1`]:
//! one task per connection reads a request head into its buffer, parses it
//! with `httparse` (header values become zero-copy slices of the head),
//! hands the request to [`proxy::handle`] and writes the response back,
//! coalescing the head and whatever body is already there into one write.
//! Request bodies are streamed to the backend while the response is being
//! written, so a backend that answers before the upload ends is not stuck.
//! Against hyper's server this drops a per-request timer, a dispatch
//! state machine and a copy of every header, which on loopback is what
//! a proxy's CPU per request is made of.
//!
//! A connection that opens with the HTTP/2 preface is told apart here
//! ([`sniff`]) and given to hyper's HTTP/2 server with the bytes already
//! read ([`Rewind`]).
//!
//! A request asking to switch protocols (WebSocket) that a backend
//! answers `101` turns the connection into a tunnel ([`tunnel`]).
//!
//! Framing follows RFC 9112: `Transfer-Encoding` must end in `chunked` and
//! may not come with `Content-Length`, conflicting lengths are refused, and
//! a bad head gets a 400 (431 when too large) and the connection closed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{Method, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use super::body::ReqBody;
use super::fields::{self, Kind, RawFields};
use super::framing::{self, Decoder, Step, COALESCE};
use super::headers::{self, Via};
use super::idle::Activity;
use super::proxy::{self, ClientConn, Headers, ProxyBody, Req};

/// Read size.
pub const READ_CHUNK: usize = 16 * 1024;
/// Buffered response bytes are written out once they reach this.
const FLUSH_AT: usize = 64 * 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a new connection speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (or after ALPN `h2`).
    Http2,
}

/// Reads a connection's first bytes into `buf` until HTTP/2's preface is
/// seen or ruled out; `None` if the peer closed first.
pub async fn sniff<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
) -> io::Result<Option<Protocol>> {
    loop {
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        buf.reserve(READ_CHUNK);
        if io.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// A stream whose first reads return bytes already taken from it.
pub struct Rewind<T> {
    pre: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub fn new(pre: Bytes, inner: T) -> Rewind<T> {
        Rewind { pre, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head; its fields are in the connection's
/// [`RawFields`].
#[derive(Debug)]
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    body: BodyKind,
    /// The client allows the connection to carry another request.
    keep_alive: bool,
    /// The client asks to switch protocols.
    upgrade: bool,
    expect_continue: bool,
}

/// A head that cannot be served: the status and why.
type Refusal = (StatusCode, &'static str);

/// Parses a complete head at the start of `buf` (taking it out), or
/// `Ok(None)` if it is not all there yet.
fn parse_head(buf: &mut BytesMut, fields: &mut RawFields) -> Result<Option<Head>, Refusal> {
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    let (len, method, path, version) = {
        let mut slots = fields::slots();
        let mut r = httparse::Request::new(&mut []);
        let parsed = match r.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => Some(n),
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => {
                return Err((
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "too many header fields",
                ))
            }
            Err(_) => return Err((BAD, "malformed request head")),
        };
        if framing::head_too_large(parsed, buf.len()) {
            return Err((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ));
        }
        let Some(len) = parsed else {
            return Ok(None);
        };
        let method = Method::from_bytes(r.method.unwrap_or("").as_bytes())
            .map_err(|_| (BAD, "bad method"))?;
        let path = r.path.unwrap_or("").as_bytes();
        let at = path.as_ptr() as usize - buf.as_ptr() as usize;
        let path = at..at + path.len();
        let version = framing::version(r.version);
        fields.record(buf, r.headers);
        (len, method, path, version)
    };
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path)).map_err(|_| (BAD, "bad request target"))?;
    fields.set_head(head);
    if method == Method::CONNECT {
        return Err((StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported"));
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut keep_alive = version == Version::HTTP_11;
    let mut expect_continue = false;
    let mut upgrade_token = false;
    for (_, value, kind) in fields.iter() {
        match kind {
            Kind::ContentLength => {
                for v in value.split(|&b| b == b',') {
                    let n = std::str::from_utf8(v.trim_ascii())
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or((BAD, "bad Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err((BAD, "conflicting Content-Length values"));
                    }
                    length = Some(n);
                }
            }
            // Only the last coding counts: chunked must be it.
            Kind::TransferEncoding => {
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            }
            Kind::Connection => {
                keep_alive = framing::connection_keeps(value, version, keep_alive);
                upgrade_token |= value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
            }
            Kind::Expect => expect_continue = value.eq_ignore_ascii_case(b"100-continue"),
            _ => {}
        }
    }
    let body = if fields.has(Kind::TransferEncoding) {
        if version == Version::HTTP_10 {
            return Err((BAD, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if length.is_some() {
            return Err((BAD, "both Transfer-Encoding and Content-Length"));
        }
        if !chunked {
            return Err((
                StatusCode::NOT_IMPLEMENTED,
                "transfer coding other than chunked",
            ));
        }
        BodyKind::Chunked
    } else {
        match length {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    };
    // A protocol switch (RFC 9110 §7.8) on a request without a body.
    let upgrade = upgrade_token
        && fields.has(Kind::Upgrade)
        && version == Version::HTTP_11
        && body == BodyKind::None;
    Ok(Some(Head {
        method,
        uri,
        version,
        body,
        keep_alive,
        expect_continue,
        upgrade,
    }))
}

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
        // A body already whole in the buffer (small ones usually come with
        // their head) goes upstream in one piece; others are streamed.
        let whole = match body {
            BodyKind::None => Some(ReqBody::Empty),
            BodyKind::Length(n) if buf.len() as u64 >= n => {
                Some(ReqBody::Full(Some(buf.split_to(n as usize).freeze())))
            }
            _ => None,
        };
        let mut body_read = true;
        if let Some(b) = whole {
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
            let (dec, length) = match body {
                BodyKind::Length(n) => (Decoder::length(n), Some(n)),
                _ => (Decoder::chunked(), None),
            };
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
/// connection may be closed by a shutdown ([`super::idle::watch`]).
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

/// Answers a request head that cannot be served, then the connection ends.
async fn refuse<W: AsyncWrite + Unpin>(
    w: &mut W,
    wbuf: &mut Vec<u8>,
    status: StatusCode,
    why: &str,
) -> io::Result<()> {
    wbuf.clear();
    status_line(wbuf, status);
    wbuf.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\ncontent-length: ");
    wbuf.extend_from_slice((why.len() + 1).to_string().as_bytes());
    wbuf.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    wbuf.extend_from_slice(why.as_bytes());
    wbuf.push(b'\n');
    w.write_all(wbuf).await
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        // Most answers: one copy.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Reads a request body from the client into the channel the proxy's
/// request body reads from. True when the whole body was read (the
/// connection is then at the next request); false when the proxy stopped
/// taking it or the client broke off.
async fn pump<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    mut dec: Decoder,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
) -> bool {
    loop {
        match dec.decode(buf) {
            Ok(Step::Data(d)) => {
                if tx.send(Ok(d)).await.is_err() {
                    return false;
                }
            }
            // A request's trailer fields are not passed on.
            Ok(Step::End | Step::Trailers(_)) => return true,
            Ok(Step::More) => {
                buf.reserve(READ_CHUNK);
                let err = match r.read_buf(buf).await {
                    Ok(0) => dec
                        .eof()
                        .err()
                        .map(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e)),
                    Ok(_) => continue,
                    Err(e) => Some(e),
                };
                if let Some(e) = err {
                    let _ = tx.send(Err(e)).await;
                }
                return false;
            }
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
                    .await;
                return false;
            }
        }
    }
}

/// How a response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// No body may be sent (HEAD, 1xx, 204, 304).
    Nothing,
    /// The length is in the head.
    Length,
    Chunked,
    /// Framed by closing the connection (an HTTP/1.0 client).
    Close,
}

/// How a response is to be written to the client.
struct Reply<'a> {
    /// The connection's write buffer.
    wbuf: &'a mut Vec<u8>,
    via: &'a Via,
    /// The request's version.
    version: Version,
    /// The request was a HEAD.
    head_only: bool,
    /// The connection may carry another request after this one.
    keep_alive: bool,
}

/// Writes a response's status line and fields into `wbuf` (not the blank
/// line); true if they give a `Content-Length`.
fn head_fields(
    wbuf: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &ProxyBody,
    via: &Via,
) -> bool {
    status_line(wbuf, parts.status);
    let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    match body.raw_head() {
        // An HTTP/1.1 backend's fields, rewritten as they are written.
        Some((raw, received)) => {
            headers::write_response(wbuf, raw, received, via, switched);
            raw.has(Kind::ContentLength)
        }
        None => {
            headers::write_map(wbuf, &parts.headers);
            parts.headers.contains_key(CONTENT_LENGTH)
        }
    }
}

/// After a backend's `101 Switching Protocols`: writes its head to the
/// client, then relays bytes both ways until either side closes. The
/// request stays counted in flight at its backend meanwhile; the
/// connection's idle timeout still applies.
async fn tunnel<IO: AsyncRead + AsyncWrite + Unpin>(
    mut io: IO,
    wbuf: &mut Vec<u8>,
    via: &Via,
    resp: Response<ProxyBody>,
    client_sent: BytesMut,
) -> io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    wbuf.clear();
    head_fields(wbuf, &parts, &body, via);
    wbuf.extend_from_slice(b"\r\n");
    drop(parts);
    let Some(mut up) = body.take_switched() else {
        return Ok(());
    };
    // What the backend sent right behind its head goes out with it.
    wbuf.extend_from_slice(&up.read);
    io.write_all(wbuf).await?;
    if !client_sent.is_empty() {
        up.stream.write_all(&client_sent).await?;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut io, &mut up.stream).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
    Ok(())
}

/// Writes `resp` to the client: head and the body as it comes, with the
/// head and any body already at hand in one write. True if the connection
/// may carry another request.
async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    to: Reply<'_>,
    resp: Response<ProxyBody>,
) -> io::Result<bool> {
    let Reply {
        wbuf,
        via,
        version,
        head_only,
        keep_alive,
    } = to;
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    wbuf.clear();
    let has_length = head_fields(wbuf, &parts, &body, via);
    let out = if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Out::Nothing
    } else if has_length {
        Out::Length
    } else if let Some(n) = body.size_hint().exact() {
        wbuf.extend_from_slice(b"content-length: ");
        wbuf.extend_from_slice(n.to_string().as_bytes());
        wbuf.extend_from_slice(b"\r\n");
        Out::Length
    } else if version == Version::HTTP_11 {
        wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Out::Chunked
    } else {
        Out::Close
    };
    let keep_alive = keep_alive && out != Out::Close;
    if !keep_alive {
        wbuf.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        wbuf.extend_from_slice(b"connection: keep-alive\r\n");
    }
    wbuf.extend_from_slice(b"\r\n");
    // The head's fields may be slices of a backend connection's buffer:
    // let it go before that connection serves its next request.
    drop(parts);
    body.release_head();
    let mut trailers = None;
    loop {
        // Take what the body has ready; write out only when it has not.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)))
            .await
        {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !wbuf.is_empty() {
                    w.write_all(wbuf).await?;
                    wbuf.clear();
                }
                body.frame().await
            }
        };
        let Some(frame) = frame else { break };
        let frame: Frame<Bytes> = frame.map_err(io::Error::other)?;
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(f) => {
                trailers = f.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() || out == Out::Nothing {
            continue;
        }
        if out == Out::Chunked {
            framing::chunk_head(wbuf, data.len());
        }
        if data.len() <= COALESCE {
            wbuf.extend_from_slice(&data);
        } else {
            w.write_all(wbuf).await?;
            wbuf.clear();
            w.write_all(&data).await?;
        }
        if out == Out::Chunked {
            wbuf.extend_from_slice(b"\r\n");
        }
        if wbuf.len() >= FLUSH_AT {
            w.write_all(wbuf).await?;
            wbuf.clear();
        }
    }
    if out == Out::Chunked {
        wbuf.extend_from_slice(b"0\r\n");
        if let Some(t) = &trailers {
            headers::write_map(wbuf, t);
        }
        wbuf.extend_from_slice(b"\r\n");
    }
    if !wbuf.is_empty() {
        w.write_all(wbuf).await?;
        wbuf.clear();
    }
    if !keep_alive {
        w.flush().await?;
    }
    Ok(keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Head>, Refusal> {
        parse_head(&mut BytesMut::from(s.as_bytes()), &mut RawFields::default())
    }

    #[test]
    fn heads_parse_with_their_framing() {
        let mut f = RawFields::default();
        let mut buf = BytesMut::from(
            &b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello"[..],
        );
        let h = parse_head(&mut buf, &mut f).unwrap().unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path_and_query().unwrap(), "/a?b=1");
        assert_eq!(f.get("x-y"), Some(&b"z"[..]));
        assert_eq!(&buf[..], b"hello");
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive && h.body == BodyKind::None);
        let h = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse(
            "PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, BodyKind::Chunked);
        assert!(h.expect_continue);
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for (head, status) in [
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                501,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 501),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
        ] {
            let (s, _) = parse(head).unwrap_err();
            assert_eq!(s.as_u16(), status, "{head:?}");
        }
        // Repeated equal lengths are one length.
        let h = parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().body, BodyKind::Length(3));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(framing::MAX_HEAD));
        assert_eq!(parse(&big).unwrap_err().0, 431);
    }

    #[tokio::test]
    async fn sniff_tells_h2_from_h1_and_rewinds() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(H2_PREFACE).await.unwrap();
        a.write_all(b"rest").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(
            sniff(&mut b, &mut buf).await.unwrap(),
            Some(Protocol::Http2)
        );
        let mut r = Rewind::new(buf.freeze(), b);
        let mut got = vec![0u8; H2_PREFACE.len() + 4];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..H2_PREFACE.len()], H2_PREFACE);
        assert_eq!(&got[H2_PREFACE.len()..], b"rest");
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"PRI * HTTP/1.1\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(
            sniff(&mut b, &mut buf).await.unwrap(),
            Some(Protocol::Http1)
        );
        drop(a);
        let (a, mut b) = tokio::io::duplex(1024);
        drop(a);
        assert_eq!(sniff(&mut b, &mut BytesMut::new()).await.unwrap(), None);
    }
}
