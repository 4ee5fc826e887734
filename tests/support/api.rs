//! A minimal HTTP/1.1 client for the local APIs of `boltz serve`, `boltz
//! l4` and `boltz l7`, over any connected stream (TCP or Unix socket), so
//! the tests talk to the real servers without an HTTP library between.

use std::io::{Read, Write};

/// One HTTP/1.1 request over an already connected stream (TCP or Unix).
pub fn http_over(
    mut s: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let body = body.unwrap_or("");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map_or("", |x| x.1);
    // Chunked bodies (axum streams JSON): strip the chunk framing.
    let body = if resp
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
