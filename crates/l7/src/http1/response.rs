//! The HTTP/1.1 server side's answers: a backend's (or boltz's own)
//! response written to the client ([`write_response`]) with the head and
//! whatever body is already at hand coalesced into one write, the body
//! framed by length, chunks (trailers in the last chunk) or the close; and
//! the short answer to a head that cannot be served ([`refuse`]). An
//! HTTP/1.1 backend's fields are rewritten as they are written
//! ([`crate::headers::write_response`]); others come as a header map.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_LENGTH};
use http::{Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::fields::Kind;
use super::framing::{self, COALESCE};
use crate::headers::{self, Via};
use crate::proxy::ProxyBody;

/// Buffered response bytes are written out once they reach this.
const FLUSH_AT: usize = 64 * 1024;

/// Answers a request head that cannot be served, then the connection ends.
pub(super) async fn refuse<W: AsyncWrite + Unpin>(
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

/// The status line of a response (boltz answers in HTTP/1.1).
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
pub(super) struct Reply<'a> {
    /// The connection's write buffer.
    pub(super) wbuf: &'a mut Vec<u8>,
    pub(super) via: &'a Via,
    /// The request's version.
    pub(super) version: Version,
    /// The request was a HEAD.
    pub(super) head_only: bool,
    /// The connection may carry another request after this one.
    pub(super) keep_alive: bool,
}

/// Writes a response's status line and fields into `wbuf` (not the blank
/// line); true if they give a `Content-Length`.
pub(super) fn head_fields(
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

impl Reply<'_> {
    /// Writes the response head into `wbuf`: the status line and fields,
    /// the framing boltz adds (a length it knows, or chunked), the
    /// `Connection` field and the blank line; says how the body follows.
    /// A body framed by the close clears `keep_alive`.
    fn write_head(&mut self, parts: &http::response::Parts, body: &ProxyBody) -> Out {
        let wbuf = &mut *self.wbuf;
        let status = parts.status;
        wbuf.clear();
        let has_length = head_fields(wbuf, parts, body, self.via);
        let out = if self.head_only
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
        } else if self.version == Version::HTTP_11 {
            wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Out::Chunked
        } else {
            Out::Close
        };
        self.keep_alive &= out != Out::Close;
        if !self.keep_alive {
            wbuf.extend_from_slice(b"connection: close\r\n");
        } else if self.version == Version::HTTP_10 {
            wbuf.extend_from_slice(b"connection: keep-alive\r\n");
        }
        wbuf.extend_from_slice(b"\r\n");
        out
    }
}

/// Writes `resp` to the client: head and the body as it comes, with the
/// head and any body already at hand in one write. True if the connection
/// may carry another request.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut to: Reply<'_>,
    resp: Response<ProxyBody>,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let out = to.write_head(&parts, &body);
    let Reply {
        wbuf, keep_alive, ..
    } = to;
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
        last_chunk(wbuf, trailers.as_ref());
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

/// The end of a chunked body: the last chunk, with the trailer fields if
/// the backend sent any.
fn last_chunk(wbuf: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    wbuf.extend_from_slice(b"0\r\n");
    if let Some(t) = trailers {
        headers::write_map(wbuf, t);
    }
    wbuf.extend_from_slice(b"\r\n");
}
