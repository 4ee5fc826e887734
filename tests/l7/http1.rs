//! boltz's own HTTP/1.1 server side (boltz-l7's `http1::server`) byte for
//! byte, with a raw TCP client against the proxy and real origins on
//! loopback: pipelining, chunked uploads with `Expect: 100-continue`,
//! HTTP/1.0 and HEAD framing, heads that must be refused (request
//! smuggling shapes, oversized, malformed), and idle keep-alive
//! connections closed by a graceful shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::{backends_toml, Origin, Proxy};

fn proxy(o: &Origin) -> Proxy {
    Proxy::start(&format!(
        "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[pools.web]\n{}\n[[routes]]\npool = \"web\"\n",
        backends_toml(&[o], &[])
    ))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One response read off the stream: status, lower-case headers, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `s` (bytes after it stay in `buf`). A body
/// without a length runs to the end of the stream.
fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    let mut chunk = [0u8; 4096];
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(n) = r.parse(buf).unwrap() {
            let status = r.code.unwrap();
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            buf.drain(..n);
            let mut a = Answer {
                status,
                headers,
                body: Vec::new(),
            };
            if head_request || status == 100 || status == 204 || status == 304 {
                return a;
            }
            match a
                .header("content-length")
                .map(|v| v.parse::<usize>().unwrap())
            {
                Some(len) => {
                    while buf.len() < len {
                        let k = s.read(&mut chunk).unwrap();
                        assert!(k > 0, "closed inside a body");
                        buf.extend_from_slice(&chunk[..k]);
                    }
                    a.body = buf.drain(..len).collect();
                }
                None => {
                    assert_eq!(
                        a.header("transfer-encoding"),
                        None,
                        "chunked not expected here"
                    );
                    s.read_to_end(buf).unwrap();
                    a.body = std::mem::take(buf);
                }
            }
            return a;
        }
        let k = s.read(&mut chunk).unwrap();
        assert!(
            k > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// Whether the peer has closed: the next read gives end of stream (or a
/// reset) instead of waiting.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    !matches!(s.read(&mut b), Ok(n) if n > 0)
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let o = Origin::start();
    let p = proxy(&o);
    let port = o.addr.port();
    let mut s = connect(p.addrs[0]);
    // Three requests in one write, the last with a body.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    let mut buf = Vec::new();
    let bodies: Vec<String> = (0..3)
        .map(|_| {
            let a = read_answer(&mut s, &mut buf, false);
            assert_eq!(a.status, 200);
            String::from_utf8(a.body).unwrap()
        })
        .collect();
    assert_eq!(
        bodies,
        [
            format!("{port} 0"),
            format!("{port} 0"),
            format!("{port} 5")
        ]
    );
    assert_eq!(o.requests(), 3);
    // Still open for a fourth.
    s.write_all(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).status, 200);
}

#[test]
fn a_chunked_upload_after_100_continue_reaches_the_origin_whole() {
    let o = Origin::start();
    let p = proxy(&o);
    let mut s = connect(p.addrs[0]);
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let cont = read_answer(&mut s, &mut buf, false);
    assert_eq!(cont.status, 100, "the client is told to send its body");
    s.write_all(b"6;ext=1\r\nhello \r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n")
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false);
    assert_eq!(a.status, 200);
    assert_eq!(
        String::from_utf8(a.body).unwrap(),
        format!("{} 11", o.addr.port())
    );
    // The connection carries on after a fully read body.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).status, 200);
}

#[test]
fn http10_and_head_requests_are_framed_for_their_client() {
    let o = Origin::start();
    let p = proxy(&o);
    let mut buf = Vec::new();
    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = connect(p.addrs[0]);
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let a = read_answer(&mut s, &mut buf, false);
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(closed(&mut s));
    // HTTP/1.0 asking for keep-alive keeps it.
    let mut s = connect(p.addrs[0]);
    buf.clear();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut s, &mut buf, false);
        assert_eq!(a.status, 200);
        assert_eq!(a.header("connection"), Some("keep-alive"));
    }
    // HEAD: the length of the body a GET would get, and no body.
    let mut s = connect(p.addrs[0]);
    buf.clear();
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_answer(&mut s, &mut buf, true);
    assert_eq!(head.status, 200);
    let get = read_answer(&mut s, &mut buf, false);
    assert_eq!(get.status, 200, "no stray body bytes between the two");
    assert!(!get.body.is_empty());
}

#[test]
fn bad_heads_are_refused_and_the_connection_closed() {
    let o = Origin::start();
    let p = proxy(&o);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let cases: [(&[u8], u16); 6] = [
        // Request smuggling shapes (RFC 9112 §6.3).
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 501),
        (huge.as_bytes(), 431),
    ];
    for (bytes, status) in cases {
        let mut s = connect(p.addrs[0]);
        // The proxy may answer and close before taking every byte.
        let _ = s.write_all(bytes);
        let mut buf = Vec::new();
        let a = read_answer(&mut s, &mut buf, false);
        assert_eq!(
            a.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&bytes[..40])
        );
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed(&mut s));
    }
    assert_eq!(o.requests(), 0, "nothing refused reached the origin");
    // The proxy still serves.
    let mut s = connect(p.addrs[0]);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s, &mut Vec::new(), false).status, 200);
}

#[test]
fn a_shutdown_closes_idle_keep_alive_connections() {
    let o = Origin::start();
    let p = proxy(&o);
    let mut s = connect(p.addrs[0]);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s, &mut Vec::new(), false).status, 200);
    // Idle between requests: the shutdown does not wait for it (the
    // default idle timeout is a minute), it closes it.
    p.shutdown();
    assert!(closed(&mut s), "the idle connection was closed");
}

/// A raw origin that switches protocols: a request with `Upgrade:
/// websocket` (or any to `/force`) gets `101` followed at once by
/// `HELLO\n`, then every byte it reads comes back upper-cased until the
/// client closes; `/trailers` gets a chunked body with trailer fields;
/// other requests get `426`. Each head it read goes to `heads`.
fn switching_origin() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, heads) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end);
                    let _ = tx.send(head.clone());
                    if head.starts_with("get /trailers") {
                        s.write_all(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
                              5\r\nhello\r\n0\r\nX-Checksum: 42\r\nContent-Length: 7\r\n\r\n",
                        )
                        .unwrap();
                        continue;
                    }
                    if !head.contains("\r\nupgrade: websocket\r\n")
                        && !head.starts_with("get /force")
                    {
                        s.write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                            .unwrap();
                        continue;
                    }
                    s.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHELLO\n",
                    )
                    .unwrap();
                    let mut pending = std::mem::take(&mut buf);
                    loop {
                        if !pending.is_empty() {
                            s.write_all(&pending.to_ascii_uppercase()).unwrap();
                            pending.clear();
                        }
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// Reads from `s` until `want` bytes have come.
fn read_exactly(s: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> Vec<u8> {
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..want).collect()
}

#[test]
fn an_upgrade_becomes_a_tunnel_and_only_when_asked() {
    let (origin, heads) = switching_origin();
    let p = Proxy::start(&format!(
        "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[pools.web]\nbackends = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"web\"\n"
    ));
    let mut s = connect(p.addrs[0]);
    let mut buf = Vec::new();
    // `Upgrade` without `Connection: upgrade` is an ordinary request: the
    // field is dropped, the origin answers 426 and the connection lives on.
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false);
    assert_eq!(a.status, 426);
    assert!(!heads.recv().unwrap().contains("upgrade"));
    // A switch, with bytes right behind the head each way.
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n\r\nearly ",
    )
    .unwrap();
    let a = read_answer(&mut s, &mut buf, true);
    assert_eq!(a.status, 101, "{a:?}");
    assert_eq!(a.header("upgrade"), Some("websocket"));
    assert_eq!(a.header("connection"), Some("upgrade"));
    assert!(
        a.header("via").is_some_and(|v| v.ends_with("boltz")),
        "{a:?}"
    );
    let seen = heads.recv().unwrap();
    for line in [
        "\r\nupgrade: websocket\r\n",
        "\r\nconnection: upgrade\r\n",
        "\r\nsec-websocket-key: dghlihnhbxbszq==\r\n",
        "\r\nx-forwarded-for: 127.0.0.1\r\n",
    ] {
        assert!(seen.contains(line), "{line:?} not in {seen:?}");
    }
    assert!(!seen.contains("keep-alive"), "{seen:?}");
    assert_eq!(read_exactly(&mut s, &mut buf, 12), b"HELLO\nEARLY ");
    for msg in [&b"ping"[..], b"more bytes\n"] {
        s.write_all(msg).unwrap();
        assert_eq!(
            read_exactly(&mut s, &mut buf, msg.len()),
            msg.to_ascii_uppercase()
        );
    }
    // The client closing ends the tunnel: the backend's side is closed too.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed(&mut s));
    // A 101 nobody asked for is the backend's fault.
    let mut s = connect(p.addrs[0]);
    s.write_all(b"GET /force HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut s, &mut Vec::new(), false).status, 502);
}

#[test]
fn trailers_from_a_backend_reach_the_client() {
    let (origin, _heads) = switching_origin();
    let p = Proxy::start(&format!(
        "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[pools.web]\nbackends = [{{ address = \"{origin}\" }}]\n[[routes]]\npool = \"web\"\n"
    ));
    let mut s = connect(p.addrs[0]);
    s.write_all(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        .unwrap();
    // The whole chunked answer, up to the end of its trailer section.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"0\r\nx-checksum: 42\r\n\r\n") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(text.contains("\r\n5\r\nhello\r\n"), "{text}");
    // A framing field is not taken from the trailers.
    assert!(!text.contains("content-length"), "{text}");
}
