//! The whole query path, wire bytes in → wire bytes out: `Handler::handle`
//! (parse, ECS checks, world load, zone lookup, geo lookup, steering
//! decision, encoding) on the repo's `zones/` and a geo database built from
//! `geoip/demo.csv`, exactly as `boltz serve` runs it minus the socket.
//! Queries are pre-encoded; ECS queries rotate over a few hundred client
//! subnets inside the demo networks; two cases carry a DNS cookie (a new
//! server cookie made, one checked). Target: < 2 µs per query.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use boltz_gslb::{Cookies, Transport};
use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;

#[path = "support/demo.rs"]
mod demo;

/// Name, pre-encoded queries, source addresses (both rotated).
type Case = (&'static str, Vec<Vec<u8>>, Vec<IpAddr>);

const RESOLVER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A query as a resolver sends it (EDNS, payload 1232, optional ECS).
fn query(name: &str, qtype: RecordType, ecs: Option<(IpAddr, u8)>) -> Vec<u8> {
    query_with(name, qtype, ecs, None)
}

/// The same with a COOKIE option holding `cookie`.
fn query_with(
    name: &str,
    qtype: RecordType,
    ecs: Option<(IpAddr, u8)>,
    cookie: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some((a, p)) = ecs {
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(a, p, 0)));
    }
    if let Some(c) = cookie {
        e.options_mut().insert(EdnsOption::Unknown(10, c.to_vec()));
    }
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// `per_net` subnets of length `len` spread inside each demo network of
/// one family (repeats when the network is smaller than that).
fn subnets(nets: &[IpNet], v4: bool, per_net: u128, len: u8) -> Vec<IpNet> {
    let mut out = Vec::new();
    for net in nets.iter().filter(|n| matches!(n, IpNet::V4(_)) == v4) {
        let len = len.max(net.prefix_len());
        let count = 1u128 << (len - net.prefix_len()).min(64);
        for k in 0..per_net {
            let off = (k * 2_654_435_761 % count) << (net.max_prefix_len() - len);
            let addr = match net.network() {
                IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + off as u32)),
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + off)),
            };
            out.push(IpNet::new(addr, len).unwrap());
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let (mut h, dir) = demo::demo_handler();
    h.cookies = Some(Arc::new(Cookies::random()));
    // A server cookie of ours, as a resolver holding one sends it back.
    let london = Some(("81.2.69.0".parse().unwrap(), 24));
    let first = query_with("www.example.com.", RecordType::A, london, Some(&[7; 8]));
    let r = Message::from_vec(&h.handle(&first, RESOLVER, Transport::Udp).unwrap()).unwrap();
    let held = match r.edns.as_ref().and_then(|e| e.option(EdnsCode::Cookie)) {
        Some(EdnsOption::Unknown(_, d)) => d.clone(),
        other => panic!("no cookie: {other:?}"),
    };

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let csv = std::fs::read_to_string(root.join("geoip/demo.csv")).unwrap();
    let nets: Vec<IpNet> = csv
        .lines()
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    let v4 = subnets(&nets, true, 16, 24);
    let v6 = subnets(&nets, false, 32, 56);
    let ecs = |subs: &[IpNet], t| -> Vec<Vec<u8>> {
        subs.iter()
            .map(|s| query("www.example.com.", t, Some((s.network(), s.prefix_len()))))
            .collect()
    };
    let cases: Vec<Case> = vec![
        ("steered_a_ecs", ecs(&v4, RecordType::A), vec![RESOLVER]),
        (
            "steered_a_no_ecs",
            vec![query("www.example.com.", RecordType::A, None)],
            v4.iter().map(|s| s.hosts().next().unwrap()).collect(),
        ),
        (
            "static_a",
            vec![query("mail.example.com.", RecordType::A, None)],
            vec![RESOLVER],
        ),
        (
            "nxdomain",
            vec![query("nope.example.com.", RecordType::A, None)],
            vec![RESOLVER],
        ),
        (
            "steered_aaaa_ecs6",
            ecs(&v6, RecordType::AAAA),
            vec![RESOLVER],
        ),
        // Cookies (RFC 9018): a new server cookie made, or one checked.
        (
            "steered_a_ecs_client_cookie",
            vec![first.clone()],
            vec![RESOLVER],
        ),
        (
            "steered_a_ecs_server_cookie",
            vec![query_with(
                "www.example.com.",
                RecordType::A,
                london,
                Some(&held),
            )],
            vec![RESOLVER],
        ),
    ];

    let mut g = c.benchmark_group("handler");
    for (name, queries, srcs) in &cases {
        // Sanity: every query of the case gets the answer the case is about.
        for (q, s) in queries.iter().zip(srcs.iter().cycle()) {
            let r = Message::from_vec(&h.handle(q, *s, Transport::Udp).unwrap()).unwrap();
            let want = if *name == "nxdomain" {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            assert_eq!(r.metadata.response_code, want, "{name}");
            assert_eq!(r.answers.is_empty(), *name == "nxdomain", "{name}");
        }
        g.bench_function(*name, |b| {
            let (mut i, n) = (0, queries.len().max(srcs.len()));
            b.iter(|| {
                i = (i + 1) % n;
                let (q, s) = (&queries[i % queries.len()], srcs[i % srcs.len()]);
                h.handle(black_box(q), black_box(s), Transport::Udp)
            })
        });
    }
    g.finish();
    drop(dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
