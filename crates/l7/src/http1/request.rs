//! A client's request as the HTTP/1.1 server side reads it. The head is
//! parsed in place with `httparse` (fields stay slices of the head, see
//! [`RawFields`]) and checked against RFC 9112's framing rules:
//! `Transfer-Encoding` must end in `chunked` and may not come with
//! `Content-Length`, conflicting lengths are refused, and a head that
//! cannot be served is a [`Refusal`] (400, 431 when too large, 501). The
//! body is either already whole in the read buffer or [`pump`]ed from the
//! connection into the channel the proxy forwards from.

use std::io;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::fields::{self, Kind, RawFields};
use super::framing::{self, Decoder, Step};
use super::READ_CHUNK;
use crate::body::ReqBody;

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

impl BodyKind {
    /// The body, if it is already whole in `buf` (small ones usually come
    /// with their head), taken out of it to go upstream in one piece.
    pub(super) fn take_whole(self, buf: &mut BytesMut) -> Option<ReqBody> {
        match self {
            BodyKind::None => Some(ReqBody::Empty),
            BodyKind::Length(n) if buf.len() as u64 >= n => {
                Some(ReqBody::Full(Some(buf.split_to(n as usize).freeze())))
            }
            _ => None,
        }
    }

    /// The decoder for a body that is streamed, and its length if known.
    pub(super) fn decoder(self) -> (Decoder, Option<u64>) {
        match self {
            BodyKind::Length(n) => (Decoder::length(n), Some(n)),
            _ => (Decoder::chunked(), None),
        }
    }
}

/// A parsed request head; its fields are in the connection's
/// [`RawFields`].
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) version: Version,
    pub(super) body: BodyKind,
    /// The client allows the connection to carry another request.
    pub(super) keep_alive: bool,
    /// The client asks to switch protocols.
    pub(super) upgrade: bool,
    pub(super) expect_continue: bool,
}

/// A head that cannot be served: the status and why.
pub(super) type Refusal = (StatusCode, &'static str);

/// Parses a complete head at the start of `buf` (taking it out), or
/// `Ok(None)` if it is not all there yet.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    fields: &mut RawFields,
) -> Result<Option<Head>, Refusal> {
    let Some(line) = parse_line(buf, fields)? else {
        return Ok(None);
    };
    let RequestLine {
        len,
        method,
        path,
        version,
    } = line;
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path)).map_err(|_| (BAD, "bad request target"))?;
    fields.set_head(head);
    if method == Method::CONNECT {
        return Err((StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported"));
    }
    let said = Declared::read(fields, version)?;
    let body = said.body(fields.has(Kind::TransferEncoding), version)?;
    // A protocol switch (RFC 9110 §7.8) on a request without a body.
    let upgrade = said.upgrade_token
        && fields.has(Kind::Upgrade)
        && version == Version::HTTP_11
        && body == BodyKind::None;
    Ok(Some(Head {
        method,
        uri,
        version,
        body,
        keep_alive: said.keep_alive,
        expect_continue: said.expect_continue,
        upgrade,
    }))
}

/// The request line of a complete head, and the head's length.
struct RequestLine {
    len: usize,
    method: Method,
    /// Where the request target is in the head.
    path: Range<usize>,
    version: Version,
}

/// Runs `httparse` over `buf` and records the fields it found into
/// `fields` (as spans of `buf`); `Ok(None)` while the head is incomplete.
/// Nothing is taken out of `buf` yet.
fn parse_line(buf: &[u8], fields: &mut RawFields) -> Result<Option<RequestLine>, Refusal> {
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
    let method =
        Method::from_bytes(r.method.unwrap_or("").as_bytes()).map_err(|_| (BAD, "bad method"))?;
    let path = r.path.unwrap_or("").as_bytes();
    let at = path.as_ptr() as usize - buf.as_ptr() as usize;
    let path = at..at + path.len();
    let version = framing::version(r.version);
    fields.record(buf, r.headers);
    Ok(Some(RequestLine {
        len,
        method,
        path,
        version,
    }))
}

/// What a request head's framing and connection fields declare.
struct Declared {
    length: Option<u64>,
    /// The last transfer coding is `chunked`.
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
    /// `Connection` names `upgrade`.
    upgrade_token: bool,
}

impl Declared {
    /// Reads the fields of a head of `version`, refusing malformed or
    /// conflicting lengths.
    fn read(fields: &RawFields, version: Version) -> Result<Declared, Refusal> {
        let mut d = Declared {
            length: None,
            chunked: false,
            keep_alive: version == Version::HTTP_11,
            expect_continue: false,
            upgrade_token: false,
        };
        for (_, value, kind) in fields.iter() {
            match kind {
                Kind::ContentLength => {
                    for v in value.split(|&b| b == b',') {
                        let n = std::str::from_utf8(v.trim_ascii())
                            .ok()
                            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or((BAD, "bad Content-Length"))?;
                        if d.length.is_some_and(|l| l != n) {
                            return Err((BAD, "conflicting Content-Length values"));
                        }
                        d.length = Some(n);
                    }
                }
                // Only the last coding counts: chunked must be it.
                Kind::TransferEncoding => {
                    d.chunked = value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                }
                Kind::Connection => {
                    d.keep_alive = framing::connection_keeps(value, version, d.keep_alive);
                    d.upgrade_token |= value
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
                }
                Kind::Expect => d.expect_continue = value.eq_ignore_ascii_case(b"100-continue"),
                _ => {}
            }
        }
        Ok(d)
    }

    /// How the body is framed (RFC 9112 §6.3), given whether the head has
    /// a `Transfer-Encoding` field at all.
    fn body(&self, transfer_encoding: bool, version: Version) -> Result<BodyKind, Refusal> {
        if !transfer_encoding {
            return Ok(match self.length {
                Some(0) | None => BodyKind::None,
                Some(n) => BodyKind::Length(n),
            });
        }
        if version == Version::HTTP_10 {
            return Err((BAD, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if self.length.is_some() {
            return Err((BAD, "both Transfer-Encoding and Content-Length"));
        }
        if !self.chunked {
            return Err((
                StatusCode::NOT_IMPLEMENTED,
                "transfer coding other than chunked",
            ));
        }
        Ok(BodyKind::Chunked)
    }
}

/// Reads a request body from the client into the channel the proxy's
/// request body reads from. True when the whole body was read (the
/// connection is then at the next request); false when the proxy stopped
/// taking it or the client broke off.
pub(super) async fn pump<R: AsyncRead + Unpin>(
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

#[cfg(test)]
mod tests;
