//! Response rate limiting against `boltz serve` over real UDP: a flood of
//! identical queries from one /24 is limited (most dropped, every second
//! limited one slipped as TC), while another /24, a client with a valid
//! server cookie inside the flooded one, an exempt network and TCP are
//! answered as usual; log-only mode limits nothing and counts.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::RecordType;

use crate::harness::*;
use crate::query::edns_query;

fn www(id: u16, cookie: Option<&[u8]>) -> Vec<u8> {
    let options = cookie
        .map(|c| vec![EdnsOption::Unknown(10, c.to_vec())])
        .unwrap_or_default();
    edns_query(id, "www.example.com.", RecordType::A, options)
}

/// What `n` identical queries sent at once from `from` got back: full
/// answers, truncated (slipped) ones, and nothing.
fn flood(server: SocketAddr, from: &str, n: u16) -> (usize, usize, usize) {
    let s = UdpSocket::bind((from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    for i in 0..n {
        s.send_to(&www(i, None), server).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok(len) = s.recv(&mut buf) {
        if buf[2] & 0x02 != 0 {
            assert_eq!(&buf[6..12], [0; 6], "a slip carries no records");
            tc += 1;
        } else {
            assert!(len > 12);
            full += 1;
        }
    }
    (full, tc, usize::from(n) - full - tc)
}

fn answered(server: SocketAddr, from: &str, q: &[u8]) -> Option<Message> {
    let raw = udp_raw(server, q, Some(from.parse().unwrap()))?;
    let m = Message::from_vec(&raw).unwrap();
    (!m.metadata.truncation && !m.answers.is_empty()).then_some(m)
}

fn counter(metrics: &str, class: &str, action: &str) -> u64 {
    let key = format!("boltz_rrl_limited_total{{class=\"{class}\",action=\"{action}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_flood_from_one_prefix_is_limited_and_no_one_else_is() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = Server::start(
        &fx,
        &[
            "--rrl-rate",
            "20",
            "--rrl-burst",
            "1",
            "--rrl-exempt",
            "127.0.7.0/24",
        ],
    );
    // A cookie learnt before the flood, from inside the prefix to flood.
    let first = Message::from_vec(
        &udp_raw(
            srv.dns,
            &www(1, Some(&[7; 8])),
            Some("127.0.5.2".parse().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let cookie = match first.edns.as_ref().unwrap().option(EdnsCode::Cookie) {
        Some(EdnsOption::Unknown(_, d)) => d.clone(),
        other => panic!("{other:?}"),
    };

    let (full, tc, none) = flood(srv.dns, "127.0.5.1", 400);
    println!(
        "flood of 400 from 127.0.5.0/24 at 20/s: {full} answered, {tc} slipped, {none} dropped"
    );
    assert!(full <= 60, "{full} answered");
    assert!(tc >= 100 && none >= 100, "{tc} slipped, {none} dropped");

    // Right after: another /24 is answered every time, so is the client
    // with a cookie in the flooded /24, so is TCP, so is the exempt net.
    for i in 0..20 {
        assert!(
            answered(srv.dns, "127.0.6.1", &www(i, None)).is_some(),
            "other /24"
        );
        assert!(
            answered(srv.dns, "127.0.5.2", &www(i, Some(&cookie))).is_some(),
            "a valid cookie"
        );
    }
    let t = tcp_query(srv.dns, &Q::new("www.example.com.", RecordType::A));
    assert!(!t.answers.is_empty(), "TCP is never limited");
    let (full, _, _) = flood(srv.dns, "127.0.7.1", 200);
    assert_eq!(full, 200, "the exempt network");
    // And the flooded /24 is still limited without a cookie.
    assert!(flood(srv.dns, "127.0.5.3", 100).0 < 50);

    let (_, metrics) = srv.api_get("/metrics");
    assert!(counter(&metrics, "answer", "dropped") >= 100, "{metrics}");
    assert!(counter(&metrics, "answer", "slipped") >= 100);
    assert_eq!(counter(&metrics, "answer", "logged"), 0);
}

#[test]
fn log_only_limits_nothing_and_counts() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = Server::start(
        &fx,
        &["--rrl-rate", "20", "--rrl-burst", "1", "--rrl-log-only"],
    );
    let (full, tc, _) = flood(srv.dns, "127.0.5.1", 300);
    assert_eq!(tc, 0, "nothing slipped");
    assert!(full >= 250, "{full} of 300 answered");
    let (_, metrics) = srv.api_get("/metrics");
    assert!(counter(&metrics, "answer", "logged") >= 200, "{metrics}");
    assert_eq!(counter(&metrics, "answer", "dropped"), 0);
    assert_eq!(counter(&metrics, "answer", "slipped"), 0);
    assert!(srv.log().contains("rate limit would apply"));
}

/// A limited client that sent a cookie (but no valid server cookie) is
/// told BADCOOKIE with a fresh one instead of a truncated answer, and its
/// retry with that cookie is answered (RFC 7873 §5.2.3).
#[test]
fn a_limited_client_with_a_cookie_is_sent_badcookie_and_then_answered() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = Server::start(
        &fx,
        &["--rrl-rate", "5", "--rrl-burst", "1", "--rrl-slip", "1"],
    );
    let s = UdpSocket::bind("127.0.5.9:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut badcookie = None;
    let mut buf = [0u8; 1500];
    for i in 0..50 {
        s.send_to(&www(i, Some(&[9; 8])), srv.dns).unwrap();
        let n = s.recv(&mut buf).expect("slip 1 answers every query");
        let m = Message::from_vec(&buf[..n]).unwrap();
        if u16::from(m.metadata.response_code) == 23 {
            badcookie = Some(m);
            break;
        }
    }
    let m = badcookie.expect("BADCOOKIE once over the rate");
    assert!(m.answers.is_empty());
    let cookie = match m.edns.as_ref().unwrap().option(EdnsCode::Cookie) {
        Some(EdnsOption::Unknown(_, d)) => d.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(cookie.len(), 24);
    for i in 0..20 {
        let r = answered(srv.dns, "127.0.5.9", &www(100 + i, Some(&cookie)));
        assert!(r.is_some(), "the retry with the server cookie");
    }
}

/// NXDOMAIN is counted per prefix and zone (BIND's semantics): a
/// random-subdomain flood against one zone does not limit the same
/// resolver's NXDOMAINs for another.
#[test]
fn an_nxdomain_flood_against_one_zone_leaves_another_alone() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    std::fs::write(
        fx.zones().join("example.org.toml"),
        "origin = \"example.org.\"\nttl = 300\nsoa = { mname = \"ns1.example.org.\", rname = \"h.example.org.\", serial = 1 }\nns = [\"ns1.example.org.\"]\n[records]\nns1 = { type = \"A\", values = [\"192.0.2.53\"] }\n",
    )
    .unwrap();
    let srv = Server::start(
        &fx,
        &["--rrl-rate", "10", "--rrl-burst", "1", "--rrl-slip", "0"],
    );
    let s = UdpSocket::bind("127.0.8.1:0").unwrap();
    for i in 0..200u16 {
        let name = format!("r{i}.example.com.");
        s.send_to(&edns_query(i, &name, RecordType::A, vec![]), srv.dns)
            .unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    let mut got = 0;
    while s.recv(&mut buf).is_ok() {
        got += 1;
    }
    assert!(got <= 30, "{got} of 200 NXDOMAINs for example.com answered");
    for i in 0..10u16 {
        let q = edns_query(i, &format!("r{i}.example.org."), RecordType::A, vec![]);
        let raw = udp_raw(srv.dns, &q, Some("127.0.8.2".parse().unwrap()))
            .expect("example.org's NXDOMAIN is not limited");
        assert_eq!(raw[3] & 0x0f, 3);
    }
}
