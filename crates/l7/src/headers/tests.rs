use super::*;

#[test]
fn hop_by_hop_headers_go() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-secret"),
    );
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["te", "x-kept"]);
}

#[test]
fn forwarding_headers_append() {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
    h.insert("via", HeaderValue::from_static("1.1 edge"));
    let via = Via::new("boltz");
    let f = Forwarding::new("2001:db8::5".parse().unwrap(), "https");
    add_forwarding(&mut h, &f, Some("example.com"), Version::HTTP_2, &via);
    assert_eq!(h["x-forwarded-for"], "192.0.2.1, 2001:db8::5");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(
        h["forwarded"],
        "for=\"[2001:db8::5]\";proto=https;host=\"example.com\""
    );
    assert_eq!(h["via"], "1.1 edge, 2 boltz");
    let mut v4 = HeaderMap::new();
    let f = Forwarding::new("::ffff:10.0.0.7".parse().unwrap(), "http");
    add_forwarding(&mut v4, &f, None, Version::HTTP_11, &via);
    assert_eq!(v4["forwarded"], "for=10.0.0.7;proto=http");
}

/// `head`'s fields as the HTTP/1.1 server records them.
fn raw(head: &'static [u8]) -> RawFields {
    let mut slots = crate::http1::fields::slots();
    let mut r = httparse::Request::new(&mut []);
    r.parse_with_uninit_headers(head, &mut slots).unwrap();
    let mut f = RawFields::default();
    f.record(head, r.headers);
    f.set_head(bytes::Bytes::from_static(head));
    f
}

#[test]
fn raw_request_fields_are_rewritten_line_by_line() {
    let f = raw(
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Hop\r\n\
        X-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.1\r\n\
        x-forwarded-for: 192.0.2.2\r\nX-Forwarded-Proto: https\r\nExpect: 100-continue\r\n\
        Upgrade: websocket\r\nVia: 1.0 edge\r\nX-Kept:  a b \r\n\r\n",
    );
    let fwd = Forwarding::new("10.0.0.7".parse().unwrap(), "http");
    let mut out = Vec::new();
    let via = Via::new("boltz");
    let mut r = Rewrite {
        forwarding: &fwd,
        host: Some("example.com"),
        authority: None,
        version: Version::HTTP_11,
        via: &via,
        upgrade: false,
    };
    write_request(&mut out, &f, &r);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Host: example.com\r\nTE: trailers\r\nX-Kept: a b\r\n\
         x-forwarded-for: 192.0.2.1, 192.0.2.2, 10.0.0.7\r\nx-forwarded-proto: http\r\n\
         forwarded: for=10.0.0.7;proto=http;host=\"example.com\"\r\nvia: 1.0 edge, 1.1 boltz\r\n"
    );
    // No Host (HTTP/1.0): the absolute-form target's authority is used.
    let f = raw(b"GET http://a.example:8080/ HTTP/1.0\r\n\r\n");
    let mut out = Vec::new();
    (r.host, r.authority, r.version) = (None, Some("a.example:8080"), Version::HTTP_10);
    write_request(&mut out, &f, &r);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("host: a.example:8080\r\n"), "{out}");
    assert!(out.ends_with("via: 1.0 boltz\r\n"), "{out}");
    // A forwarded switch keeps `Upgrade` and says so in `Connection`.
    let f = raw(b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    let mut out = Vec::new();
    r.upgrade = true;
    write_request(&mut out, &f, &r);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("Upgrade: websocket\r\nconnection: upgrade\r\n"),
        "{out}"
    );
}

#[test]
fn raw_response_fields_lose_hop_by_hop_and_gain_via() {
    let f = raw(
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close, X-Private\r\n\
        X-Private: 1\r\nTransfer-Encoding: chunked\r\nVia: 1.1 origin\r\nSet-Cookie: a=1\r\n\r\n",
    );
    let mut out = Vec::new();
    write_response(&mut out, &f, Version::HTTP_10, &Via::new("lb"), false);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Content-Length: 3\r\nSet-Cookie: a=1\r\nvia: 1.1 origin, 1.0 lb\r\n"
    );
}

#[test]
fn host_without_port() {
    let h = Some(&b"Example.com:8080"[..]);
    assert_eq!(request_host(&"/x".parse().unwrap(), h), Some("Example.com"));
    assert_eq!(
        request_host(&"http://[::1]:80/".parse().unwrap(), h),
        Some("[::1]")
    );
}
