//! Tests of request-head parsing: framing read from the fields, and the
//! request-smuggling shapes RFC 9112 says to refuse.

use bytes::BytesMut;
use http::Method;

use super::{parse_head, BodyKind, Head, Refusal};
use crate::http1::fields::RawFields;
use crate::http1::framing;

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
    let h =
        parse("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n")
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
