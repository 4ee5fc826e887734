//! DNS over TCP against clients that misbehave, over real sockets: queries
//! pipelined in one write, edns-tcp-keepalive, a client that dribbles a
//! query byte by byte, too many connections from one address, and a flood
//! of connections that send queries and never read their answers, which
//! must not keep a new client from being answered.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use crate::harness::*;

fn zone() -> String {
    let big: Vec<String> = (0..40)
        .map(|i| format!("\"{i:02}-{}\"", "x".repeat(60)))
        .collect();
    zone_toml(
        "",
        &[],
        &format!(
            "big = {{ type = \"TXT\", values = [{}] }}\n",
            big.join(", ")
        ),
    )
}

/// A framed TCP query for `name`/`qtype` with `id`, and EDNS `options`.
fn framed(id: u16, name: &str, qtype: RecordType, options: Option<Vec<EdnsOption>>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(opts) = options {
        let mut e = Edns::new();
        for o in opts {
            e.options_mut().insert(o);
        }
        m.set_edns(e);
    }
    let b = m.to_vec().unwrap();
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

/// The edns-tcp-keepalive option of an answer.
fn keepalive(m: &Message) -> Option<&EdnsOption> {
    m.edns.as_ref()?.option(EdnsCode::from(11))
}

fn read_msg(s: &mut TcpStream) -> std::io::Result<Message> {
    Ok(Message::from_vec(&read_framed(s)?).unwrap())
}

fn connect_from(from: IpAddr, to: SocketAddr, rcvbuf: Option<usize>) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).unwrap();
    }
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn pipelined_queries_are_all_answered_and_keepalive_is_advertised() {
    let fx = Fixture::new(&zone());
    let srv = Server::start(&fx, &["--tcp-idle", "7s"]);
    let mut s = TcpStream::connect(srv.dns).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let all: Vec<u8> = (0..30u16)
        .flat_map(|i| {
            let (name, t) = match i % 3 {
                0 => ("www.example.com.", RecordType::A),
                1 => ("big.example.com.", RecordType::TXT),
                _ => ("nope.example.com.", RecordType::A),
            };
            framed(100 + i, name, t, None)
        })
        .collect();
    s.write_all(&all).unwrap();
    let mut ids: Vec<u16> = (0..30)
        .map(|_| read_msg(&mut s).unwrap().metadata.id)
        .collect();
    ids.sort();
    assert_eq!(ids, (100..130).collect::<Vec<_>>());

    // RFC 7828: asked over TCP, the idle time in units of 100 ms.
    let ka = || Some(vec![EdnsOption::Unknown(11, Vec::new())]);
    s.write_all(&framed(200, "www.example.com.", RecordType::A, ka()))
        .unwrap();
    let r = read_msg(&mut s).unwrap();
    assert_eq!(
        keepalive(&r),
        Some(&EdnsOption::Unknown(11, vec![0, 70])),
        "{r:?}"
    );
    // Not asked, not told; a query carrying a timeout is malformed.
    s.write_all(&framed(
        201,
        "www.example.com.",
        RecordType::A,
        Some(vec![]),
    ))
    .unwrap();
    let r = read_msg(&mut s).unwrap();
    assert!(keepalive(&r).is_none());
    let bad = Some(vec![EdnsOption::Unknown(11, vec![0, 1])]);
    s.write_all(&framed(202, "www.example.com.", RecordType::A, bad.clone()))
        .unwrap();
    assert_eq!(
        read_msg(&mut s).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    // Over UDP the option is ignored, whatever it holds.
    let udp = &framed(203, "www.example.com.", RecordType::A, bad)[2..];
    let r = Message::from_vec(&udp_raw(srv.dns, udp, None).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(keepalive(&r).is_none());
}

/// The idle time runs for the whole query: dribbling bytes does not buy
/// time.
#[test]
fn a_query_dribbled_byte_by_byte_does_not_hold_the_connection() {
    let fx = Fixture::new(&zone());
    let srv = Server::start(&fx, &["--tcp-idle", "1s"]);
    let mut s = TcpStream::connect(srv.dns).unwrap();
    let q = framed(1, "www.example.com.", RecordType::A, None);
    let start = Instant::now();
    let mut closed = false;
    // One byte every 250 ms would finish the query after 7 s.
    for b in &q {
        if s.write_all(&[*b]).is_err() || closed_within(&mut s, Duration::from_millis(250)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the connection outlived its idle time");
    println!(
        "dribbling client closed after {:.2} s (idle 1 s)",
        start.elapsed().as_secs_f64()
    );
}

/// Connections that send queries and never read (a tiny receive window),
/// more than the server has slots for, from many addresses, plus silent
/// ones: a new client is still answered, within about the idle limit
/// (the flood is shed under pressure), and one address cannot take more
/// than its share.
#[test]
fn a_flood_of_clients_that_never_read_does_not_lock_out_a_new_one() {
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let fx = Fixture::new(&zone());
    // The defaults: 1024 connections, 32 per address, 10 s idle.
    let srv = Server::start(&fx, &[]);
    let queries: Vec<u8> = (0..100u16)
        .flat_map(|i| framed(i, "big.example.com.", RecordType::TXT, None))
        .collect();
    let mut flood = Vec::new();
    let start = Instant::now();
    // 1100 connections from 40 addresses (28 each, within the share).
    for i in 0..1100u32 {
        let from = IpAddr::from([127, 0, 1, 1 + (i % 40) as u8]);
        let mut s = connect_from(from, srv.dns, Some(1024));
        if i % 2 == 0 {
            // Sends 100 queries for a 2.5 KB answer and never reads.
            s.set_nonblocking(true).unwrap();
            let _ = s.write(&queries);
        }
        flood.push(s);
    }
    // One address past its share: closed on accept.
    let mut extra: Vec<TcpStream> = (0..33)
        .map(|_| connect_from(IpAddr::from([127, 0, 2, 1]), srv.dns, None))
        .collect();
    let flooded = start.elapsed();
    let t = Instant::now();
    let mut fresh = connect_from(IpAddr::from([127, 0, 3, 1]), srv.dns, None);
    fresh
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    fresh
        .write_all(&framed(7, "www.example.com.", RecordType::A, None))
        .unwrap();
    let r = read_msg(&mut fresh).expect("the new client is answered");
    let waited = t.elapsed();
    assert_eq!(r.metadata.id, 7);
    assert_eq!(addrs(&r).len(), 1, "{r:?}");
    let refused = extra
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_millis(500)))
        .filter(|c| *c)
        .count();
    assert!(refused >= 1, "33 connections from one address, all kept");
    let (_, metrics) = srv.api_get("/metrics");
    println!(
        "1100 connections in {:.2} s; a new client answered after {:.2} s (idle 10 s); {refused} of 33 from one address closed",
        flooded.as_secs_f64(),
        waited.as_secs_f64()
    );
    for m in ["boltz_tcp_refused_total", "boltz_tcp_timeouts_total"] {
        let line = metrics.lines().find(|l| l.starts_with(m)).unwrap();
        println!("  {line}");
        assert!(!line.ends_with(" 0"), "{line}");
    }
    drop(flood);
}
