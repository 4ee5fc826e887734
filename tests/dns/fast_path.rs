//! The fast path and the general path give the same answers: every query
//! of a corpus (names, types, case, EDNS and ECS variants, both transports,
//! drained and all-down states, and thousands of mutated packets) is
//! answered by a handler with the fast path and by one without, and the two
//! responses must parse to the same message, name spellings included.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::harness::*;
use boltz_gslb::{Control, GeoDb, Handler, Metrics, Transport, ZoneSet};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

struct Pair {
    fast: Handler,
    general: Handler,
    control: Arc<Control>,
    _dir: tempfile::TempDir,
}

fn pair(steering: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("geo.csv");
    std::fs::write(&csv, GEO_CSV).unwrap();
    let db = dir.path().join("geo.mmdb");
    boltz_gslb::build_from_csv(&csv, &db).unwrap();
    let big: Vec<String> = (0..40)
        .map(|i| format!("\"{i:02}-{}\"", "x".repeat(60)))
        .collect();
    let records = format!(
        r#"blog = {{ type = "CNAME", value = "www" }}
"a.b" = {{ type = "A", values = ["192.0.2.1"] }}
big = {{ type = "TXT", values = [{}] }}
mail = {{ type = "MX", values = ["10 mx.example.com."] }}
txt = {{ type = "TXT", values = ["v=spf1 -all"] }}
"_sip._tcp" = {{ type = "SRV", values = ["10 60 5060 sip.example.com."] }}
caa = {{ type = "CAA", values = ['0 issue "letsencrypt.org"'] }}
lab = {{ type = "NS", values = ["ns.lab.example.com."] }}
"ns.lab" = {{ type = "A", values = ["192.0.2.54"] }}
api = {{ type = "steered", datacenters = ["fra", "iad", "sin"], answers = 2 }}
v4only = {{ type = "steered", datacenters = ["fra"] }}
"*.cdn" = {{ type = "steered", datacenters = ["fra", "iad", "sin"] }}
"host.cdn" = {{ type = "A", values = ["192.0.2.77"] }}
"*.w" = {{ type = "TXT", values = ["wild"] }}
"*.alias" = {{ type = "CNAME", value = "www" }}
"*.deep" = {{ type = "A", values = ["192.0.2.78"] }}
"x.y.deep" = {{ type = "A", values = ["192.0.2.79"] }}
"#,
        big.join(", ")
    );
    let text = zone_toml(steering, &[], &records);
    let zone = ZoneSet::parse_one(Path::new("example.com.toml"), &text).unwrap();
    let control = Control::new(ZoneSet::new(vec![zone]), false).unwrap();
    let geo = Some(Arc::new(GeoDb::open(&db).unwrap()));
    let mk = |fast| {
        let mut h = Handler::new(control.clone(), geo.clone(), Arc::new(Metrics::default()));
        h.fast = fast;
        h
    };
    Pair {
        fast: mk(true),
        general: mk(false),
        control,
        _dir: dir,
    }
}

/// What `Message` equality leaves out: name spelling (case) and TTLs.
fn names_of(m: &Message) -> Vec<String> {
    let q = m.queries.iter().map(|q| q.name().to_string());
    let records = m.answers.iter().chain(&m.authorities).chain(&m.additionals);
    q.chain(records.map(|r| format!("{} {}", r.name, r.ttl)))
        .collect()
}

fn same(p: &Pair, bytes: &[u8], src: IpAddr, t: Transport) -> bool {
    let a = p.fast.handle(bytes, src, t);
    let b = p.general.handle(bytes, src, t);
    match (&a, &b) {
        (None, None) => {}
        (Some(x), Some(y)) if x == y => {}
        (Some(x), Some(y)) => {
            let (mx, my) = (Message::from_vec(x), Message::from_vec(y));
            match (mx, my) {
                (Ok(mx), Ok(my)) => {
                    assert_eq!(mx, my, "query {bytes:02x?}");
                    assert_eq!(
                        names_of(&mx),
                        names_of(&my),
                        "name spelling for {bytes:02x?}"
                    );
                }
                (mx, my) => panic!("query {bytes:02x?}: fast {mx:?} vs general {my:?}"),
            }
        }
        _ => panic!(
            "query {bytes:02x?}: fast answered {} / general {}",
            a.is_some(),
            b.is_some()
        ),
    }
    a.is_some()
}

fn corpus() -> Vec<Q> {
    let names = [
        "www.example.com.",
        "WwW.ExAmPlE.cOm.",
        "api.example.com.",
        "v4only.example.com.",
        "ns1.example.com.",
        "mail.example.com.",
        "txt.example.com.",
        "_sip._tcp.example.com.",
        "caa.example.com.",
        "nope.example.com.",
        "deep.nope.example.com.",
        "b.example.com.",
        "x.a.b.example.com.",
        "blog.example.com.",
        "host.lab.example.com.",
        "lab.example.com.",
        "example.com.",
        "EXAMPLE.COM.",
        "big.example.com.",
        "www.example.org.",
        "org.",
        ".",
        "a.cdn.example.com.",
        "A.B.Cdn.example.com.",
        "*.cdn.example.com.",
        "host.cdn.example.com.",
        "deep.host.cdn.example.com.",
        "q.w.example.com.",
        "z.alias.example.com.",
        "n.deep.example.com.",
        "m.y.deep.example.com.",
        "y.deep.example.com.",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SOA,
        RecordType::NS,
        RecordType::ANY,
        RecordType::CAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::CNAME,
    ];
    let ecs: [Option<&str>; 9] = [
        None,
        Some("81.2.69.0/24"),
        Some("81.2.69.128/25"),
        Some("0.0.0.0/0"),
        Some("216.160.83.7/32"),
        Some("2a02:ec0::/48"),
        Some("::ffff:1.130.0.0/112"),
        Some("100.64.0.0/10"),
        Some("2400:cb00:1::/56"),
    ];
    let mut out = Vec::new();
    for n in names {
        for t in types {
            for e in ecs {
                let mut q = Q::new(n, t);
                if let Some(e) = e {
                    q = q.ecs(e);
                }
                out.push(q.clone());
                out.push(Q {
                    payload: 512,
                    ..q.clone()
                });
            }
            out.push(Q::new(n, t).no_edns());
        }
    }
    out
}

fn run_corpus(p: &Pair) -> usize {
    let mut answered = 0;
    let srcs: [IpAddr; 3] = [
        "127.0.1.5".parse().unwrap(),
        "127.0.3.9".parse().unwrap(),
        "::1".parse().unwrap(),
    ];
    for (i, q) in corpus().iter().enumerate() {
        let bytes = q.to_bytes();
        for t in [Transport::Udp, Transport::Tcp] {
            answered += usize::from(same(p, &bytes, srcs[i % 3], t));
        }
    }
    answered
}

#[test]
fn fast_and_general_paths_agree_on_the_corpus() {
    let p = pair("");
    assert!(run_corpus(&p) > 5000);
}

#[test]
fn they_agree_when_dcs_are_drained_or_all_down() {
    for policy in [
        "all_down = \"serve-all\"",
        "all_down = \"servfail\"",
        "all_down = { fallback = [\"192.0.2.99\"] }",
    ] {
        let p = pair(policy);
        p.control.set_drain("fra", None, true).unwrap();
        run_corpus(&p);
        p.control.set_drain("iad", None, true).unwrap();
        p.control.set_drain("sin", None, true).unwrap();
        run_corpus(&p);
    }
}

/// xorshift, reproducible.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn they_agree_on_mutated_and_odd_packets() {
    let p = pair("");
    let src: IpAddr = "127.0.2.1".parse().unwrap();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let bases: Vec<Vec<u8>> = [
        Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"),
        Q::new("nope.example.com.", RecordType::AAAA),
        Q::new("ns1.example.com.", RecordType::A).no_edns(),
    ]
    .iter()
    .map(Q::to_bytes)
    .collect();
    for base in &bases {
        // Every truncation.
        for n in 0..base.len() {
            same(&p, &base[..n], src, Transport::Udp);
        }
        // Trailing garbage.
        let mut longer = base.clone();
        longer.extend_from_slice(&[0, 1, 2]);
        same(&p, &longer, src, Transport::Udp);
        // Random byte flips.
        for _ in 0..3000 {
            let mut m = base.clone();
            for _ in 0..1 + rng(&mut seed) % 3 {
                let at = (rng(&mut seed) as usize) % m.len();
                m[at] = rng(&mut seed) as u8;
            }
            same(&p, &m, src, Transport::Udp);
        }
    }
}
