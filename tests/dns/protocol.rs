//! DNS protocol behaviour of `boltz serve` over real UDP and TCP sockets:
//! NXDOMAIN vs NODATA, REFUSED, CNAME chasing, delegations with glue,
//! truncation then TCP, case echo, minimal ANY, BADVERS, NOTIMP, and a burst
//! of random and truncated packets that must neither crash nor hang it.

use std::net::UdpSocket;
use std::time::Duration;

use crate::harness::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

fn zone() -> String {
    let big: Vec<String> = (0..40)
        .map(|i| format!("\"{i:02}-{}\"", "x".repeat(60)))
        .collect();
    let records = format!(
        r#"blog = {{ type = "CNAME", value = "www" }}
ext = {{ type = "CNAME", value = "www.example.org." }}
"a.b" = {{ type = "A", values = ["192.0.2.1"] }}
big = {{ type = "TXT", values = [{}] }}
mail = {{ type = "MX", values = ["10 mx.example.com."] }}
lab = {{ type = "NS", values = ["ns.lab.example.com."] }}
"ns.lab" = {{ type = "A", values = ["192.0.2.54"] }}
"#,
        big.join(", ")
    );
    zone_toml("", &[], &records)
}

fn server() -> (Fixture, Server) {
    let fx = Fixture::new(&zone());
    let srv = fx.serve();
    (fx, srv)
}

fn soa_in_authority(m: &Message) -> Option<u32> {
    m.authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.ttl)
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("nope.example.com.", RecordType::A));
    assert_eq!(rcode(&r), ResponseCode::NXDomain);
    assert!(r.metadata.authoritative);
    assert!(!r.metadata.recursion_available);
    assert!(r.answers.is_empty());
    assert_eq!(
        soa_in_authority(&r),
        Some(60),
        "negative TTL is the SOA minimum"
    );

    let r = srv.query(&Q::new("ns1.example.com.", RecordType::MX));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(soa_in_authority(&r), Some(60));

    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let r = srv.query(&Q::new("b.example.com.", RecordType::A));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(r.answers.is_empty());
}

#[test]
fn refused_outside_our_zones_and_never_recursion() {
    let (_fx, srv) = server();
    for name in ["www.example.org.", "com.", "."] {
        let r = srv.query(&Q::new(name, RecordType::A));
        assert_eq!(rcode(&r), ResponseCode::Refused, "{name}");
        assert!(!r.metadata.authoritative);
        assert!(!r.metadata.recursion_available);
        assert!(r.answers.is_empty());
    }
    // Recursion desired is echoed but never offered.
    let r = srv.query(&Q::new("www.example.com.", RecordType::A));
    assert!(r.metadata.recursion_desired);
    assert!(!r.metadata.recursion_available);
}

#[test]
fn apex_soa_and_ns() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("example.com.", RecordType::SOA));
    assert_eq!(r.answers.len(), 1);
    assert!(matches!(r.answers[0].data, RData::SOA(_)));
    let r = srv.query(&Q::new("example.com.", RecordType::NS));
    assert_eq!(r.answers.len(), 1);
    assert!(matches!(&r.answers[0].data, RData::NS(ns) if ns.0.to_string() == "ns1.example.com."));
}

#[test]
fn cname_is_followed_inside_the_zone() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("blog.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert_eq!(r.answers.len(), 2);
    assert!(matches!(&r.answers[0].data, RData::CNAME(c) if c.0.to_string() == "www.example.com."));
    assert_eq!(addrs(&r), vec![FRA.to_string()]);

    // Out of zone: only the CNAME, the resolver follows it.
    let r = srv.query(&Q::new("ext.example.com.", RecordType::A));
    assert_eq!(r.answers.len(), 1);
    assert!(matches!(&r.answers[0].data, RData::CNAME(_)));

    // Asking for the CNAME itself does not chase.
    let r = srv.query(&Q::new("blog.example.com.", RecordType::CNAME));
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn delegation_answers_with_a_referral_and_glue() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("host.lab.example.com.", RecordType::A));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    assert!(!r.metadata.authoritative, "a referral is not authoritative");
    assert!(r.answers.is_empty());
    assert!(r
        .authorities
        .iter()
        .any(|a| matches!(&a.data, RData::NS(ns) if ns.0.to_string() == "ns.lab.example.com.")));
    assert!(r
        .additionals
        .iter()
        .any(|a| matches!(&a.data, RData::A(x) if x.0.to_string() == "192.0.2.54")));
}

#[test]
fn truncated_over_udp_then_complete_over_tcp() {
    let (_fx, srv) = server();
    let q = Q::new("big.example.com.", RecordType::TXT);
    let r = srv.query(&q);
    assert!(r.metadata.truncation, "2.6 KB of TXT cannot fit 1232 bytes");
    assert!(
        r.answers.is_empty(),
        "no partial RRset in a truncated answer"
    );
    assert!(r.edns.is_some(), "OPT kept in a truncated answer");
    let t = tcp_query(srv.dns, &q);
    assert!(!t.metadata.truncation);
    assert_eq!(t.answers.len(), 40);
    assert!(t
        .answers
        .iter()
        .all(|a| matches!(&a.data, RData::TXT(txt) if txt.txt_data.len() == 1)));

    // Without EDNS the limit is 512 bytes; a steered answer still fits.
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).no_edns());
    assert!(!r.metadata.truncation);
    assert!(r.edns.is_none(), "no OPT in answer to a query without one");
    let r = srv.query(&Q::new("big.example.com.", RecordType::TXT).no_edns());
    assert!(r.metadata.truncation);
}

#[test]
fn names_match_case_insensitively_and_echo_the_query_case() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("WwW.ExAmPlE.CoM.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), vec![FRA.to_string()]);
    assert_eq!(r.queries[0].name().to_string(), "WwW.ExAmPlE.CoM.");
    assert_eq!(r.answers[0].name.to_string(), "WwW.ExAmPlE.CoM.");
    let r = srv.query(&Q::new("NS1.example.COM.", RecordType::A));
    assert_eq!(r.answers[0].name.to_string(), "NS1.example.COM.");
}

#[test]
fn any_is_answered_minimally() {
    let (_fx, srv) = server();
    let r = srv.query(&Q::new("example.com.", RecordType::ANY));
    assert_eq!(rcode(&r), ResponseCode::NoError);
    let types: std::collections::BTreeSet<RecordType> =
        r.answers.iter().map(|a| a.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {types:?}");
    let r = srv.query(&Q::new("www.example.com.", RecordType::ANY).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), vec![FRA.to_string()]);
}

#[test]
fn badvers_notimp_and_other_classes() {
    let (_fx, srv) = server();
    // EDNS version 1 → BADVERS (extended rcode 16) with our OPT, version 0.
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("www.example.com.").unwrap(),
        RecordType::A,
    ));
    let mut e = hickory_proto::op::Edns::new();
    e.set_version(1);
    m.set_edns(e);
    let raw = udp_raw(srv.dns, &m.to_vec().unwrap(), None).unwrap();
    let r = Message::from_vec(&raw).unwrap();
    // 16 is both BADVERS and BADSIG; hickory decodes it as the latter.
    assert_eq!(u16::from(rcode(&r)), 16, "BADVERS");
    assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    assert!(r.answers.is_empty());

    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut m = Message::new(8, MessageType::Query, op);
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::SOA,
        ));
        let raw = udp_raw(srv.dns, &m.to_vec().unwrap(), None).unwrap();
        assert_eq!(raw[3] & 0x0f, 4, "{op:?} → NOTIMP");
    }

    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    let mut q = Query::query(
        Name::from_ascii("www.example.com.").unwrap(),
        RecordType::TXT,
    );
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let r = Message::from_vec(&udp_raw(srv.dns, &m.to_vec().unwrap(), None).unwrap()).unwrap();
    assert_eq!(rcode(&r), ResponseCode::Refused);

    // Two questions → FORMERR.
    let mut m = Message::new(10, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("www.example.com.").unwrap(),
        RecordType::A,
    ));
    m.add_query(Query::query(
        Name::from_ascii("ns1.example.com.").unwrap(),
        RecordType::A,
    ));
    let raw = udp_raw(srv.dns, &m.to_vec().unwrap(), None).unwrap();
    assert_eq!(raw[3] & 0x0f, 1);
}

/// xorshift: reproducible garbage without a dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn random_and_truncated_packets_do_not_crash_or_hang_the_server() {
    let (_fx, srv) = server();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let valid = Q::new("www.example.com.", RecordType::A)
        .ecs("81.2.69.0/24")
        .to_bytes();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut sent = 0;
    // Every prefix of a valid query.
    for n in 0..valid.len() {
        sock.send_to(&valid[..n], srv.dns).unwrap();
        sent += 1;
    }
    // Valid queries with random bytes flipped, and pure garbage.
    for i in 0..400 {
        let mut p = if i % 2 == 0 {
            valid.clone()
        } else {
            let len = (rng(&mut seed) % 300) as usize;
            (0..len).map(|_| rng(&mut seed) as u8).collect()
        };
        for _ in 0..3 {
            if !p.is_empty() {
                let at = (rng(&mut seed) as usize) % p.len();
                p[at] = rng(&mut seed) as u8;
            }
        }
        // Clear QR so the server does not just drop it as a response.
        if p.len() > 2 {
            p[2] &= 0x7f;
        }
        sock.send_to(&p, srv.dns).unwrap();
        sent += 1;
    }
    // Answers that come back must parse as DNS messages or be FORMERR
    // headers; nothing else is acceptable.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 65535];
    let mut answered = 0;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        assert!(n >= 12, "short answer");
        assert!(buf[2] & 0x80 != 0, "answers are responses");
        answered += 1;
    }
    assert!(answered > 0 && answered <= sent);

    // TCP garbage: a length prefix promising more than is sent, then close.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(srv.dns).unwrap();
        s.write_all(&[0x01, 0x00, 0xde, 0xad]).unwrap();
    }
    // Still alive and correct.
    let r = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"));
    assert_eq!(addrs(&r), vec![FRA.to_string()]);
    let t = tcp_query(
        srv.dns,
        &Q::new("www.example.com.", RecordType::A).ecs("216.160.83.0/24"),
    );
    assert_eq!(addrs(&t), vec![IAD.to_string()]);
}

/// A query for `www` with ECS from London, asking for NSID when `nsid`,
/// with OPT version `version`.
fn nsid_query(nsid: bool, version: u8) -> Vec<u8> {
    use hickory_proto::op::Edns;
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption, NSIDPayload};
    let mut m = Message::new(0x5151, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("www.example.com.").unwrap(),
        RecordType::A,
    ));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_version(version);
    e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
        "81.2.69.0".parse().unwrap(),
        24,
        0,
    )));
    if nsid {
        e.options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
    }
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// The NSID a response carries.
fn nsid_of(m: &Message) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
        _ => None,
    }
}

/// RFC 5001: `--nsid` names the instance to whoever asks (what tells
/// anycast sites apart), in answers and in errors alike; nobody else sees
/// it, and asking changes no answer.
#[test]
fn nsid_names_the_server_to_whoever_asks() {
    let fx = Fixture::new(&zone());
    let srv = Server::start(&fx, &["--nsid", "fra-1"]);
    let ask = |q: Vec<u8>| Message::from_vec(&udp_raw(srv.dns, &q, None).unwrap()).unwrap();
    let asked = ask(nsid_query(true, 0));
    assert_eq!(nsid_of(&asked).as_deref(), Some(&b"fra-1"[..]));
    let plain = ask(nsid_query(false, 0));
    assert_eq!(nsid_of(&plain), None);
    assert_eq!(addrs(&asked), addrs(&plain), "asking changes no answer");
    assert!(!addrs(&plain).is_empty());
    let err = ask(nsid_query(true, 1));
    assert_eq!(
        u16::from(rcode(&err)),
        16,
        "BADVERS (hickory decodes 16 as BADSIG)"
    );
    assert_eq!(nsid_of(&err).as_deref(), Some(&b"fra-1"[..]));

    // Without --nsid nothing is said.
    let (_fx2, other) = server();
    let m = Message::from_vec(&udp_raw(other.dns, &nsid_query(true, 0), None).unwrap()).unwrap();
    assert_eq!(nsid_of(&m), None);
}

/// `--listen` repeated: one server answers on each address (an anycast
/// IPv4 and IPv6 address, say), over UDP and TCP.
#[test]
fn every_listen_address_answers() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback here");
        return;
    }
    let fx = Fixture::new(&zone());
    let srv = Server::start(&fx, &["--listen", "[::1]:0"]);
    assert_eq!(srv.dns_all.len(), 2, "{:?}", srv.dns_all);
    assert!(srv.dns_all[1].is_ipv6());
    for at in &srv.dns_all {
        let q = Q::new("a.b.example.com.", RecordType::A);
        let r = udp_query(*at, &q, Some(at.ip())).expect("UDP answer");
        assert_eq!(addrs(&r), ["192.0.2.1"], "UDP on {at}");
        let r = tcp_query(*at, &q);
        assert_eq!(addrs(&r), ["192.0.2.1"], "TCP on {at}");
    }
}

/// Crafted packets (issue 16): what a query does not need is FORMERR at
/// once, with our OPT when the query's was readable; an unknown opcode is
/// NOTIMP with no QUERY flag; BADVERS beats a broken option. Over UDP and
/// TCP, and the server answers a valid query right after each.
#[test]
fn crafted_packets_get_the_right_error_at_once() {
    let (_fx, srv) = server();
    let header = |flags: [u8; 2], counts: [u16; 4]| {
        let mut q = vec![0x55, 0x66, flags[0], flags[1]];
        for c in counts {
            q.extend_from_slice(&c.to_be_bytes());
        }
        q
    };
    let question = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01".to_vec();
    let opt = |version: u8, rdata: &[u8]| {
        let mut o = vec![0, 0, 41, 4, 0xd0, 0, version, 0, 0];
        o.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        o.extend_from_slice(rdata);
        o
    };
    // Answer records whose owners are chains of compression pointers.
    let mut chains = [header([1, 0], [1, 200, 0, 0]), question.clone()].concat();
    let mut prev = 12u16;
    for _ in 0..200 {
        let at = chains.len() as u16;
        chains.extend_from_slice(&[1, b'a', 0xc0 | (prev >> 8) as u8, prev as u8]);
        chains.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 0]);
        prev = at;
    }
    let bad_ecs = [0u8, 8, 0, 8, 0, 1, 24, 0, 81, 2, 69, 0];
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        ("pointer chains in the answer section", chains, 1, false),
        (
            "a pointer loop as the question",
            [header([1, 0], [1, 0, 0, 0]), vec![0xc0, 12, 0, 1, 0, 1]].concat(),
            1,
            false,
        ),
        (
            "two OPT records (the first is readable)",
            [
                header([1, 0], [1, 0, 0, 2]),
                question.clone(),
                opt(0, &[]),
                opt(0, &[]),
            ]
            .concat(),
            1,
            true,
        ),
        (
            "trailing bytes after a readable OPT",
            [
                header([1, 0], [1, 0, 0, 1]),
                question.clone(),
                opt(0, &[]),
                vec![0],
            ]
            .concat(),
            1,
            true,
        ),
        (
            "a malformed ECS option",
            [
                header([1, 0], [1, 0, 0, 1]),
                question.clone(),
                opt(0, &bad_ecs),
            ]
            .concat(),
            1,
            true,
        ),
        (
            "EDNS version 1 with a malformed ECS option",
            [
                header([1, 0], [1, 0, 0, 1]),
                question.clone(),
                opt(1, &bad_ecs),
            ]
            .concat(),
            16,
            true,
        ),
        (
            "opcode 15 with every flag",
            header([0x7f, 0xf0], [0, 0, 0, 0]),
            4,
            false,
        ),
    ];
    for (what, q, want, with_opt) in &cases {
        for tcp in [false, true] {
            let raw = if tcp {
                tcp_raw(srv.dns, q)
            } else {
                udp_raw(srv.dns, q, None).unwrap_or_else(|| panic!("{what}: no answer"))
            };
            let r = Message::from_vec(&raw).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(u16::from(rcode(&r)), *want, "{what} (tcp {tcp})");
            assert_eq!(r.edns.is_some(), *with_opt, "{what}: our OPT");
            if *want == 4 {
                assert_eq!(raw[2], 0xf8, "{what}: QR and the opcode only");
                assert_eq!(raw[3], 0x04, "{what}: no RA, Z, AD, CD");
                assert_eq!(&raw[4..12], [0; 8], "{what}: no sections");
            }
        }
        let ok = srv.query(&Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"));
        assert_eq!(addrs(&ok), [FRA], "after {what}");
    }
}

/// Bound to the wildcard address, the server answers from the address
/// each query was sent to: a client that connected its socket to that
/// address (as resolvers do) takes the answer. 127.0.0.2 and .3 are
/// loopback addresses too.
#[test]
fn a_wildcard_listener_answers_from_the_address_asked() {
    let fx = Fixture::new(&zone());
    let srv = Server::start(&fx, &["--listen", "0.0.0.0:0"]);
    let port = srv.dns_all[1].port();
    for to in ["127.0.0.2", "127.0.0.3", "127.0.0.1"] {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect((to, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send(&Q::new("a.b.example.com.", RecordType::A).to_bytes())
            .unwrap();
        let mut buf = [0u8; 1500];
        let n = s
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no answer from {to}: {e}"));
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(addrs(&r), ["192.0.2.1"], "asked {to}");
    }
}
