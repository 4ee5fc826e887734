//! HTTP/1.1 message framing (RFC 9112), shared by the upstream client
//! (responses) and the client-facing server (requests): head limits, the
//! `Connection` rules, and chunk framing.
//! - A [`Decoder`] cuts a body out of a connection's read buffer by
//!   Content-Length, chunked coding or connection close, and hands the
//!   data out as zero-copy slices of that buffer; what follows the body
//!   stays in the buffer for the next message.

use bytes::{Buf, Bytes, BytesMut};

/// Most bytes of a head.
pub const MAX_HEAD: usize = 64 * 1024;
/// Body pieces up to this size are copied next to their framing and sent
/// in one write; larger ones are written as they are.
pub const COALESCE: usize = 8 * 1024;

/// Whether a head `httparse` parsed (`Some(length)`) or is still reading
/// (`None`, `buffered` bytes so far) is over [`MAX_HEAD`].
pub fn head_too_large(parsed: Option<usize>, buffered: usize) -> bool {
    parsed.unwrap_or(buffered) > MAX_HEAD
}

/// The version `httparse` read (`Some(0)` is HTTP/1.0).
pub fn version(minor: Option<u8>) -> http::Version {
    if minor == Some(0) {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    }
}

/// Whether a message's connection stays open, given the persistence so
/// far (`keep`) and a `Connection` field's value: `close` ends it, and
/// `keep-alive` keeps an HTTP/1.0 one (RFC 9112 §9.3).
pub fn connection_keeps(value: &[u8], version: http::Version, mut keep: bool) -> bool {
    for t in value.split(|&b| b == b',') {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            keep = false;
        } else if t.eq_ignore_ascii_case(b"keep-alive") && version == http::Version::HTTP_10 {
            keep = true;
        }
    }
    keep
}

/// Longest chunk-size line accepted (with extensions).
const MAX_SIZE_LINE: usize = 1024;
/// Most bytes of trailer fields after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a size line.
    Size,
    /// This many data bytes left in the chunk, then CRLF.
    Data(u64),
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// What the buffer yields next.
#[derive(Debug, PartialEq)]
pub enum Step {
    Data(Bytes),
    /// A chunked body's trailer fields (end to end ones only); the body
    /// has ended.
    Trailers(http::HeaderMap),
    /// The body has ended.
    End,
    /// Read more into the buffer first.
    More,
}

/// Cuts one message body out of a connection's read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A body of exactly `n` bytes.
    pub fn length(n: u64) -> Decoder {
        Decoder {
            state: if n == 0 {
                State::Done
            } else {
                State::Length(n)
            },
        }
    }

    /// A chunked body.
    pub fn chunked() -> Decoder {
        Decoder {
            state: State::Chunked(Chunk::Size),
        }
    }

    /// A body that ends when the peer closes (responses only).
    pub fn until_close() -> Decoder {
        Decoder {
            state: State::UntilClose,
        }
    }

    /// Whether the whole body has been taken.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the connection can carry another message once this body
    /// ended (not for a body framed by the close).
    pub fn delimited(&self) -> bool {
        self.state != State::UntilClose
    }

    /// Body bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The peer closed the connection: the end of a close-framed body, an
    /// error for any other.
    pub fn eof(&mut self) -> Result<(), &'static str> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err("connection closed in the middle of a body"),
        }
    }

    /// Takes the next piece of the body from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n);
                    self.state = if take == n {
                        State::Done
                    } else {
                        State::Length(n - take)
                    };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::Chunked(Chunk::Size) => {
                    let Some(eol) = find_crlf(buf) else {
                        if buf.len() > MAX_SIZE_LINE {
                            return Err("chunk size line too long");
                        }
                        return Ok(Step::More);
                    };
                    let hex = buf[..eol]
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or(b"")
                        .trim_ascii();
                    let size = parse_hex(hex).ok_or("bad chunk size")?;
                    buf.advance(eol + 2);
                    self.state = State::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                State::Chunked(Chunk::Data(n)) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (buf.len() as u64).min(n);
                    self.state = State::Chunked(if take == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(n - take)
                    });
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk not followed by CRLF");
                    }
                    buf.advance(2);
                    self.state = State::Chunked(Chunk::Size);
                }
                State::Chunked(Chunk::Trailers) => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = State::Done;
                        continue;
                    }
                    // The whole trailer section, then parsed at once.
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if buf.len() > MAX_TRAILERS {
                            return Err("trailers too long");
                        }
                        return Ok(Step::More);
                    };
                    let fields = trailers(&buf[..end + 4])?;
                    buf.advance(end + 4);
                    self.state = State::Done;
                    if !fields.is_empty() {
                        return Ok(Step::Trailers(fields));
                    }
                }
            }
        }
    }
}

/// A trailer section's fields that may be passed on: those not about
/// framing, routing or the connection (RFC 9110 §6.5.1); others, and
/// fields `http` refuses, are dropped.
fn trailers(section: &[u8]) -> Result<http::HeaderMap, &'static str> {
    use super::fields::Kind;
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let parsed = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => return Err("trailers cut short"),
        Err(httparse::Error::TooManyHeaders) => return Err("too many trailer fields"),
        Err(_) => return Err("malformed trailer field"),
    };
    let mut map = http::HeaderMap::new();
    for h in parsed {
        let kind = Kind::of(h.name.as_bytes());
        if !matches!(kind, Kind::Other | Kind::Cookie) {
            continue;
        }
        let name = http::HeaderName::from_bytes(h.name.as_bytes());
        let value = http::HeaderValue::from_bytes(h.value);
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    Ok(map)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// A chunk size: hex digits only, at most 15 of them (no overflow).
fn parse_hex(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    hex.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n << 4 | v as u64)
    })
}

/// Writes the chunk-size line for a chunk of `len` bytes.
pub fn chunk_head(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut Decoder, input: &[u8]) -> (Result<Vec<u8>, &'static str>, Vec<u8>) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // one byte at a time: every split point is exercised
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf) {
                    Ok(Step::Data(x)) => out.extend_from_slice(&x),
                    Ok(Step::End | Step::Trailers(_)) => return (Ok(out), buf.to_vec()),
                    Ok(Step::More) => break,
                    Err(e) => return (Err(e), buf.to_vec()),
                }
            }
        }
        (Ok(out), buf.to_vec())
    }

    #[test]
    fn chunked_bodies_by_the_byte_leave_the_next_message() {
        let mut d = Decoder::chunked();
        let (body, rest) = all(
            &mut d,
            b"3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\nGET",
        );
        assert_eq!(body.unwrap(), b"abc0123456789");
        assert!(d.is_done());
        assert!(rest.is_empty(), "decoding stops at the end");
        let mut d = Decoder::length(4);
        let mut buf = BytesMut::from(&b"abcdGET /"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Step::Data(Bytes::from_static(b"abcd")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Step::End));
        assert_eq!(&buf[..], b"GET /");
    }

    #[test]
    fn trailers_come_whole_and_only_end_to_end_ones() {
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::from(
            &b"1\r\na\r\n0\r\nGrpc-Status: 0\r\nContent-Length: 9\r\nX-Sum: abc\r\n\r\nNEXT"[..],
        );
        assert_eq!(d.decode(&mut buf), Ok(Step::Data(Bytes::from_static(b"a"))));
        let Ok(Step::Trailers(t)) = d.decode(&mut buf) else {
            panic!("trailers expected");
        };
        assert_eq!(t["grpc-status"], "0");
        assert_eq!(t["x-sum"], "abc");
        assert!(!t.contains_key("content-length"));
        assert!(d.is_done());
        assert_eq!(d.decode(&mut buf), Ok(Step::End));
        assert_eq!(&buf[..], b"NEXT");
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::from(&b"0\r\nBad Name: x\r\n\r\n"[..]);
        assert!(d.decode(&mut buf).is_err());
    }

    #[test]
    fn bad_chunks_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcXY",
            b"1234567890abcdef0\r\n",
            b"\r\n",
        ] {
            assert!(all(&mut Decoder::chunked(), bad).0.is_err(), "{bad:?}");
        }
        let mut d = Decoder::length(3);
        assert!(d.eof().is_err());
        let mut d = Decoder::until_close();
        assert!(d.eof().is_ok() && d.is_done());
    }

    #[test]
    fn connection_tokens_decide_persistence() {
        const HTTP_10: http::Version = http::Version::HTTP_10;
        const HTTP_11: http::Version = http::Version::HTTP_11;
        assert!(!connection_keeps(b"Close", HTTP_11, true));
        assert!(connection_keeps(b"x-hop, keep-alive", HTTP_10, false));
        assert!(
            !connection_keeps(b"keep-alive", HTTP_11, false),
            "1.1 keeps by default only"
        );
        assert!(!connection_keeps(b"keep-alive, close", HTTP_10, false));
        assert!(head_too_large(None, MAX_HEAD + 1) && head_too_large(Some(MAX_HEAD + 1), 0));
        assert!(
            !head_too_large(Some(10), MAX_HEAD + 100),
            "a small head with a body after it"
        );
    }

    #[test]
    fn chunk_heads_are_hex() {
        let mut v = Vec::new();
        chunk_head(&mut v, 0);
        chunk_head(&mut v, 255);
        chunk_head(&mut v, 4096);
        assert_eq!(v, b"0\r\nff\r\n1000\r\n");
    }
}
