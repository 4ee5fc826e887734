//! The header fields of an HTTP/1.1 head, kept as the bytes they arrived
//! in. [`RawFields`] records where `httparse` found each field in the
//! frozen head and what the field means to the proxy ([`Kind`], decided
//! once by its name), so an HTTP/1.1-to-HTTP/1.1 exchange is forwarded
//! without building a `HeaderMap` on either side: framing fields are read
//! by kind, and the head is rewritten line by line
//! ([`crate::headers::write_request`], [`crate::headers::write_response`]).
//! A map is built only when the other side is HTTP/2 ([`RawFields::to_map`]).
//! Each connection keeps one `RawFields` and reuses it for every head.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// What a header field is to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// End to end, passed on as it is.
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Te,
    /// Another hop-by-hop field (RFC 9110 §7.6.1): dropped.
    HopByHop,
    /// Hop-by-hop too, but passed on (with `Connection: upgrade`) when a
    /// protocol switch is being forwarded.
    Upgrade,
    XForwardedFor,
    XForwardedProto,
    Forwarded,
    Via,
    Cookie,
}

impl Kind {
    /// The kind of a field named `name` (any case).
    pub fn of(name: &[u8]) -> Kind {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        // Sorted by length: one or two comparisons for most names.
        match name.len() {
            2 if is("te") => Kind::Te,
            3 if is("via") => Kind::Via,
            4 if is("host") => Kind::Host,
            6 if is("expect") => Kind::Expect,
            6 if is("cookie") => Kind::Cookie,
            7 if is("upgrade") => Kind::Upgrade,
            7 if is("trailer") => Kind::HopByHop,
            9 if is("forwarded") => Kind::Forwarded,
            10 if is("connection") => Kind::Connection,
            10 if is("keep-alive") => Kind::HopByHop,
            14 if is("content-length") => Kind::ContentLength,
            15 if is("x-forwarded-for") => Kind::XForwardedFor,
            16 if is("proxy-connection") => Kind::HopByHop,
            17 if is("transfer-encoding") => Kind::TransferEncoding,
            17 if is("x-forwarded-proto") => Kind::XForwardedProto,
            18 if is("proxy-authenticate") => Kind::HopByHop,
            19 if is("proxy-authorization") => Kind::HopByHop,
            _ => Kind::Other,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u8
    }
}

/// One field: where its name and value lie in the head, and its kind.
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
    kind: Kind,
    /// The field's line in the head is exactly `name: value` and CRLF,
    /// so it can be copied as it is.
    plain: bool,
}

/// Most header fields of a head.
pub const MAX_HEADERS: usize = 128;

/// Room for `httparse` to parse a head's fields into, left uninitialised
/// (initialising 128 of them costs more than parsing a small head).
pub fn slots<'b>() -> [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A parsed head's header fields over the head's bytes.
#[derive(Debug, Default)]
pub struct RawFields {
    head: Bytes,
    spans: Vec<Span>,
    /// Which kinds occur (bit per [`Kind`]).
    kinds: u16,
}

impl RawFields {
    /// Records the fields `httparse` parsed out of `buf`; the head itself
    /// follows with [`RawFields::set_head`] once it is frozen.
    pub fn record(&mut self, buf: &[u8], headers: &[httparse::Header<'_>]) {
        let base = buf.as_ptr() as usize;
        let at = |s: &[u8]| ((s.as_ptr() as usize - base) as u32, s.len() as u32);
        self.head = Bytes::new();
        self.spans.clear();
        self.kinds = 0;
        for h in headers {
            let name = h.name.as_bytes();
            let kind = Kind::of(name);
            self.kinds |= kind.bit();
            let (name, value) = (at(name), at(h.value));
            let name_end = (name.0 + name.1) as usize;
            let value_end = (value.0 + value.1) as usize;
            let plain = value.0 as usize == name_end + 2
                && buf.get(name_end..name_end + 2) == Some(b": ")
                && buf.get(value_end..value_end + 2) == Some(b"\r\n");
            self.spans.push(Span {
                name,
                value,
                kind,
                plain,
            });
        }
    }

    /// The head the recorded spans point into (the same bytes as `buf`
    /// in [`RawFields::record`]).
    pub fn set_head(&mut self, head: Bytes) {
        self.head = head;
    }

    /// Lets go of the head (and so of the buffer it shares) once it has
    /// been forwarded.
    pub fn release(&mut self) {
        self.head = Bytes::new();
        self.spans.clear();
        self.kinds = 0;
    }

    /// Whether any field is of kind `k`.
    pub fn has(&self, k: Kind) -> bool {
        self.kinds & k.bit() != 0
    }

    /// Whether any field is of one of `kinds`.
    pub fn has_any(&self, kinds: &[Kind]) -> bool {
        kinds.iter().any(|&k| self.has(k))
    }

    fn slice(&self, (at, len): (u32, u32)) -> &[u8] {
        &self.head[at as usize..(at + len) as usize]
    }

    /// Every field as (name, value, kind), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], Kind)> + '_ {
        self.spans
            .iter()
            .map(|s| (self.slice(s.name), self.slice(s.value), s.kind))
    }

    /// Writes the fields `keep` accepts, one `name: value` line each.
    /// Runs of fields that stand in the head as such lines, one after
    /// another, are copied in one piece (most heads are one such run).
    pub fn write_lines(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8], &[u8], Kind) -> bool) {
        // The run of plain lines not yet copied: head[from..to].
        let (mut from, mut to) = (0usize, 0usize);
        for s in &self.spans {
            let (name, value) = (self.slice(s.name), self.slice(s.value));
            if !keep(name, value, s.kind) {
                continue;
            }
            let start = s.name.0 as usize;
            if s.plain {
                if start != to || from == to {
                    out.extend_from_slice(&self.head[from..to]);
                    from = start;
                }
                to = (s.value.0 + s.value.1) as usize + 2;
                continue;
            }
            out.extend_from_slice(&self.head[from..to]);
            (from, to) = (0, 0);
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.head[from..to]);
    }

    /// The values of the fields of kind `k`, in order.
    pub fn values(&self, k: Kind) -> impl Iterator<Item = &[u8]> + '_ {
        // Most kinds are absent: then there is nothing to walk.
        let spans = if self.has(k) { &self.spans[..] } else { &[] };
        spans
            .iter()
            .filter(move |s| s.kind == k)
            .map(|s| self.slice(s.value))
    }

    /// The first value of the field `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v, _)| v)
    }

    /// The fields as a map whose values are zero-copy slices of the head,
    /// with room for `extra` more: for the HTTP/2 side of an exchange.
    pub fn to_map(&self, extra: usize) -> Result<HeaderMap, &'static str> {
        let mut map = HeaderMap::with_capacity(self.spans.len() + extra);
        for s in &self.spans {
            let name = HeaderName::from_bytes(self.slice(s.name)).map_err(|_| "bad header name")?;
            let (at, len) = s.value;
            let value =
                HeaderValue::from_maybe_shared(self.head.slice(at as usize..(at + len) as usize))
                    .map_err(|_| "bad header value")?;
            map.append(name, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &'static [u8]) -> RawFields {
        let mut slots = slots();
        let mut r = httparse::Request::new(&mut []);
        r.parse_with_uninit_headers(head, &mut slots).unwrap();
        let mut f = RawFields::default();
        f.record(head, r.headers);
        f.set_head(Bytes::from_static(head));
        f
    }

    #[test]
    fn fields_keep_their_bytes_and_kinds() {
        let f = parsed(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nCOOKIE: a=1\r\ncookie: b=2\r\nKeep-Alive: 5\r\n\r\n",
        );
        let all: Vec<_> = f
            .iter()
            .map(|(n, v, k)| (n.to_vec(), v.to_vec(), k))
            .collect();
        assert_eq!(all[1], (b"X-One".to_vec(), b"1".to_vec(), Kind::Other));
        assert_eq!(all[4].2, Kind::HopByHop);
        assert_eq!(f.get("x-one"), Some(&b"1"[..]));
        assert_eq!(f.get("host"), Some(&b"a"[..]));
        let cookies: Vec<&[u8]> = f.values(Kind::Cookie).collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2"]);
        assert!(f.has(Kind::Host) && f.has(Kind::HopByHop) && !f.has(Kind::Via));
        assert!(f.has_any(&[Kind::Via, Kind::Cookie]));
        let map = f.to_map(0).unwrap();
        assert_eq!(map.get_all("cookie").iter().count(), 2);
        assert_eq!(map["x-one"], "1");
    }

    #[test]
    fn lines_are_copied_in_runs_and_odd_ones_normalised() {
        let f = parsed(
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nDrop: x\r\nC:3\r\nD: 4\nE: 5\r\nF: 6 \r\nG: \r\n\r\n",
        );
        let mut out = Vec::new();
        f.write_lines(&mut out, |n, _, _| n != b"Drop");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: \r\n"
        );
        let mut out = Vec::new();
        f.write_lines(&mut out, |_, _, _| false);
        assert!(out.is_empty());
    }

    #[test]
    fn kinds_by_name() {
        for (name, kind) in [
            ("TE", Kind::Te),
            ("Transfer-Encoding", Kind::TransferEncoding),
            ("x-forwarded-proto", Kind::XForwardedProto),
            ("Proxy-Authorization", Kind::HopByHop),
            ("upgrade", Kind::Upgrade),
            ("Trailer", Kind::HopByHop),
            ("x-forwarded-fox", Kind::Other),
            ("", Kind::Other),
        ] {
            assert_eq!(Kind::of(name.as_bytes()), kind, "{name}");
        }
    }
}
