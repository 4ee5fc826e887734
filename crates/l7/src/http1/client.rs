//! A lean HTTP/1.1 client for the upstream side (the backend-facing twin
//! of [`super::server`]), run inline in the task that serves the client:
//! the request head is written straight to the backend socket, the
//! response head parsed with `httparse`, and the response body framed
//! (Content-Length, chunked, or until close) by [`ResponseBody`], which
//! hands data out as zero-copy slices of its read buffer. Compared with
//! hyper's client connection this saves a task, two channels and their
//! wake-ups per request; the proxy's CPU per request is what decides its
//! throughput when proxy, clients and backends share the cores. A
//! connection goes back to the worker's pool only after its response was
//! read to the end with keep-alive intact.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::fields::{self, Kind, RawFields};
use super::framing::{self, Decoder, Step, COALESCE};
use super::READ_CHUNK;
use crate::body::{BoxError, ReqBody};

/// One kept-alive connection to a backend.
#[derive(Debug)]
pub struct H1Conn {
    pub addr: SocketAddr,
    stream: TcpStream,
    rbuf: BytesMut,
    /// The request head is built here, reused by every request.
    wbuf: Vec<u8>,
    /// The last response head's fields, reused likewise.
    fields: RawFields,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("write to {0}: {1}")]
    Write(SocketAddr, io::Error),
    #[error("read from {0}: {1}")]
    Read(SocketAddr, io::Error),
    #[error("{0} closed the connection before answering")]
    Closed(SocketAddr),
    #[error("{0} sent a malformed response: {1}")]
    Malformed(SocketAddr, String),
    #[error("request body: {0}")]
    Body(BoxError),
}

impl H1Conn {
    pub fn new(addr: SocketAddr, stream: TcpStream) -> H1Conn {
        H1Conn {
            addr,
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(512),
            fields: RawFields::default(),
        }
    }

    /// Whether an idle pooled connection still looks usable: nothing to
    /// read (no early close, no stray bytes). Uses the readiness the
    /// runtime already has, so it costs no system call.
    pub fn idle_ok(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.rbuf.is_empty() && self.stream.poll_read_ready(&mut cx).is_pending()
    }

    /// Sends a request (head, then the body streamed) and reads the
    /// response head. `fields` writes the head's field lines; `has_length`
    /// says whether they include a `Content-Length` (else a body goes
    /// chunked). The connection moves into the response body, whose
    /// [`ResponseBody::head`] gives the response's fields.
    pub async fn send(
        mut self,
        method: &Method,
        path_and_query: &str,
        fields: impl FnOnce(&mut Vec<u8>),
        has_length: bool,
        mut body: Option<ReqBody>,
    ) -> Result<Response<ResponseBody>, H1Error> {
        let addr = self.addr;
        if body.as_ref().is_some_and(|b| b.is_end_stream()) {
            body = None;
        }
        let chunked = body.is_some() && !has_length;
        let mut head = std::mem::take(&mut self.wbuf);
        request_head(&mut head, method, path_and_query, fields, chunked);
        self.stream
            .write_all(&head)
            .await
            .map_err(|e| H1Error::Write(addr, e))?;
        self.wbuf = head;
        if let Some(mut b) = body {
            while let Some(frame) = b.frame().await {
                let frame = frame.map_err(H1Error::Body)?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                self.write_piece(&data, chunked).await?;
            }
            if chunked {
                self.stream
                    .write_all(b"0\r\n\r\n")
                    .await
                    .map_err(|e| H1Error::Write(addr, e))?;
            }
        }
        loop {
            let (status, version, keep_alive) = self.read_head().await?;
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                // 100 Continue and friends: the real answer follows.
                continue;
            }
            let dec = response_decoder(method, status, &self.fields);
            // After a switch the connection speaks another protocol: it is
            // a tunnel's ([`ResponseBody::take_switched`]) or nobody's.
            let switched = status == StatusCode::SWITCHING_PROTOCOLS;
            let mut resp = Response::new(ResponseBody {
                conn: Some(self),
                dec,
                keep_alive: keep_alive && !switched,
                switched,
                version,
            });
            *resp.status_mut() = status;
            *resp.version_mut() = version;
            return Ok(resp);
        }
    }

    /// Writes one piece of a request body, in a chunk if `chunked`; a small
    /// chunk goes out in one write with its framing.
    async fn write_piece(&mut self, data: &[u8], chunked: bool) -> Result<(), H1Error> {
        let addr = self.addr;
        let w = |e| H1Error::Write(addr, e);
        if !chunked {
            return self.stream.write_all(data).await.map_err(w);
        }
        self.wbuf.clear();
        framing::chunk_head(&mut self.wbuf, data.len());
        if data.len() <= COALESCE {
            self.wbuf.extend_from_slice(data);
            self.wbuf.extend_from_slice(b"\r\n");
            return self.stream.write_all(&self.wbuf).await.map_err(w);
        }
        self.stream.write_all(&self.wbuf).await.map_err(w)?;
        self.stream.write_all(data).await.map_err(w)?;
        self.stream.write_all(b"\r\n").await.map_err(w)
    }

    /// Reads until a whole response head is buffered and takes it out of
    /// the buffer into `fields`; returns its status and version and
    /// whether the connection may be kept.
    async fn read_head(&mut self) -> Result<(StatusCode, Version, bool), H1Error> {
        let addr = self.addr;
        loop {
            if !self.rbuf.is_empty() {
                let parsed = {
                    let mut slots = fields::slots();
                    let mut r = httparse::Response::new(&mut []);
                    let parsed = httparse::ParserConfig::default()
                        .parse_response_with_uninit_headers(&mut r, &self.rbuf, &mut slots);
                    let parsed = match parsed {
                        Ok(httparse::Status::Complete(n)) => Some(n),
                        Ok(httparse::Status::Partial) => None,
                        Err(e) => return Err(H1Error::Malformed(addr, e.to_string())),
                    };
                    if framing::head_too_large(parsed, self.rbuf.len()) {
                        return Err(H1Error::Malformed(addr, "response head too large".into()));
                    }
                    if parsed.is_some() {
                        self.fields.record(&self.rbuf, r.headers);
                    }
                    parsed.map(|n| (n, r.code.unwrap_or(0), r.version))
                };
                if let Some((n, code, v)) = parsed {
                    let status = StatusCode::from_u16(code)
                        .map_err(|_| H1Error::Malformed(addr, "bad status code".into()))?;
                    let version = framing::version(v);
                    self.fields.set_head(self.rbuf.split_to(n).freeze());
                    let keep = self
                        .fields
                        .values(Kind::Connection)
                        .fold(version == Version::HTTP_11, |keep, v| {
                            framing::connection_keeps(v, version, keep)
                        });
                    return Ok((status, version, keep));
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            let n = tokio::io::AsyncReadExt::read_buf(&mut self.stream, &mut self.rbuf)
                .await
                .map_err(|e| H1Error::Read(addr, e))?;
            if n == 0 {
                return Err(H1Error::Closed(addr));
            }
        }
    }
}

/// Writes a request head into `head` (cleared first): the request line,
/// the field lines `fields` writes, and `Transfer-Encoding: chunked` when
/// the body goes chunked.
fn request_head(
    head: &mut Vec<u8>,
    method: &Method,
    path_and_query: &str,
    fields: impl FnOnce(&mut Vec<u8>),
    chunked: bool,
) {
    head.clear();
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(path_and_query.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    fields(head);
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
}

/// How the body of a response to `method` with `status` and these fields
/// is framed (RFC 9112 §6.3): none, chunked, a length, or until close.
fn response_decoder(method: &Method, status: StatusCode, f: &RawFields) -> Decoder {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        Decoder::length(0)
    } else if f
        .values(Kind::TransferEncoding)
        .any(|v| v.eq_ignore_ascii_case(b"chunked"))
    {
        Decoder::chunked()
    } else if let Some(n) = f
        .values(Kind::ContentLength)
        .next()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Decoder::length(n)
    } else {
        Decoder::until_close()
    }
}

/// A backend's response body, streamed from its connection.
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<H1Conn>,
    dec: Decoder,
    keep_alive: bool,
    /// The response is a `101 Switching Protocols`.
    switched: bool,
    /// The response's version.
    version: Version,
}

impl ResponseBody {
    /// The response head's fields as received, and its version; until
    /// [`ResponseBody::release_head`].
    pub fn head(&self) -> Option<(&RawFields, Version)> {
        self.conn.as_ref().map(|c| (&c.fields, self.version))
    }

    /// After a `101 Switching Protocols`: the backend socket and the bytes
    /// already read after the head, for a tunnel.
    pub fn take_switched(&mut self) -> Option<(TcpStream, BytesMut)> {
        if !self.switched {
            return None;
        }
        self.conn.take().map(|c| (c.stream, c.rbuf))
    }

    /// Lets go of the response head once it has been forwarded, so the
    /// connection's read buffer is not shared when it next grows.
    pub fn release_head(&mut self) {
        if let Some(c) = &mut self.conn {
            c.fields.release();
        }
    }

    /// The connection, once the body has been read to its end and the
    /// connection may carry another request.
    pub fn take_reusable(&mut self) -> Option<H1Conn> {
        if self.dec.is_done() && self.keep_alive && self.dec.delimited() {
            self.conn.take()
        } else {
            None
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(c) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.dec.decode(&mut c.rbuf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::Trailers(t)) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::More) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))));
                }
            }
            c.rbuf.reserve(READ_CHUNK);
            let n = {
                let dst = c.rbuf.spare_capacity_mut();
                let mut rb = ReadBuf::uninit(dst);
                if let Err(e) = ready!(Pin::new(&mut c.stream).poll_read(cx, &mut rb)) {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                rb.filled().len()
            };
            if n == 0 {
                let r = this.dec.eof();
                this.conn = None;
                return Poll::Ready(r.err().map(|e| {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("backend: {e}"),
                    ))
                }));
            }
            // SAFETY: poll_read initialised `n` bytes of the spare capacity.
            unsafe { c.rbuf.set_len(c.rbuf.len() + n) };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.dec.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.dec.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A backend that answers each request with the next canned response.
    async fn backend(replies: Vec<&'static [u8]>) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for r in replies {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(r).await.unwrap();
            }
            // Close after the last reply (it may be framed by the close).
        });
        addr
    }

    async fn get(c: H1Conn) -> (Response<ResponseBody>, Vec<u8>) {
        let mut r = c
            .send(&Method::GET, "/", |_| {}, false, None)
            .await
            .unwrap();
        let mut body = Vec::new();
        while let Some(f) = r.body_mut().frame().await {
            match f.unwrap().into_data() {
                Ok(d) => body.extend_from_slice(&d),
                // Trailers, shown after the data.
                Err(t) => {
                    for (n, v) in t.into_trailers().unwrap().iter() {
                        body.extend_from_slice(format!("[{n}={}]", v.to_str().unwrap()).as_bytes());
                    }
                }
            }
        }
        (r, body)
    }

    #[tokio::test]
    async fn lengths_chunks_and_reuse() {
        let addr = backend(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
        ])
        .await;
        let c = H1Conn::new(addr, TcpStream::connect(addr).await.unwrap());
        let (mut r, body) = get(c).await;
        assert_eq!((r.status(), &body[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(r.body().head().unwrap().0.get("x-a"), Some(&b"1"[..]));
        let c = r.body_mut().take_reusable().expect("kept alive");
        let (mut r, body) = get(c).await;
        assert_eq!(
            (r.status(), &body[..]),
            (StatusCode::CREATED, &b"abcde[x-t=1]"[..])
        );
        let c = r.body_mut().take_reusable().expect("chunked end reached");
        let (mut r, body) = get(c).await;
        assert_eq!((r.status(), body.len()), (StatusCode::NO_CONTENT, 0));
        let c = r.body_mut().take_reusable().expect("no body");
        let (mut r, body) = get(c).await;
        assert_eq!(&body[..], b"until close");
        assert!(r.body_mut().take_reusable().is_none(), "Connection: close");
    }

    #[tokio::test]
    async fn malformed_answers_are_errors() {
        for bad in [&b"HTTP/1.1 2000 OK\r\n\r\n"[..], b"NONSENSE\r\n\r\n"] {
            let addr = backend(vec![bad]).await;
            let c = H1Conn::new(addr, TcpStream::connect(addr).await.unwrap());
            let e = c
                .send(&Method::GET, "/", |_| {}, false, None)
                .await
                .unwrap_err();
            assert!(matches!(e, H1Error::Malformed(..)), "{e}");
        }
        let addr = backend(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ])
        .await;
        let c = H1Conn::new(addr, TcpStream::connect(addr).await.unwrap());
        let mut r = c
            .send(&Method::GET, "/", |_| {}, false, None)
            .await
            .unwrap();
        assert!(r.body_mut().frame().await.unwrap().is_err());
    }
}
