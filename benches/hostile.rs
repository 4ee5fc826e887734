//! The worst a single query can cost: `Handler::handle` on crafted
//! packets beside valid queries, on the repo's `zones/`. Before the
//! screen, records in sections a query does not need were parsed, and
//! names built from long chains of compression pointers made a 4 KB UDP
//! query cost 45 valid ones and a 64 KB TCP query ~7,500. After the
//! criterion runs, one line per case prints its cost as a multiple of a
//! valid query's (fast path) and of a valid query on the general path.
//!
//! `cargo bench --bench hostile`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use boltz_gslb::Transport;
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/demo.rs"]
mod demo;

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 1));

/// Header with `qd`, `an`, `ns`, `ar` and the question `www.example.com`
/// A; `flags` as bytes 2 and 3.
fn header(qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x01, 0x00];
    for c in [qd, an, ns, ar] {
        q.extend_from_slice(&c.to_be_bytes());
    }
    if qd > 0 {
        q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    }
    q
}

fn opt(rdata: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    o.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

/// A valid query; with `nsid` it asks for the server id and takes the
/// general path.
fn valid(nsid: bool) -> Vec<u8> {
    let mut q = header(1, 0, 0, 1);
    let mut rdata = vec![0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69];
    if nsid {
        rdata.extend_from_slice(&[0, 3, 0, 0]);
    }
    q.extend_from_slice(&opt(&rdata));
    q
}

/// Up to `size` bytes of records in the answer section, each owned by a
/// label and a pointer to the previous record's owner: resolving every
/// name walks a chain that grows by one per record.
fn pointer_chains(size: usize) -> Vec<u8> {
    let mut q = header(1, 0, 0, 0);
    let mut prev = 12u16; // the question's name
    let mut n = 0u16;
    while q.len() + 14 <= size && n < u16::MAX {
        let at = q.len();
        q.extend_from_slice(&[1, b'a', 0xc0 | (prev >> 8) as u8, prev as u8]);
        q.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 0]);
        // Pointers reach 14 bits: past that, every record points at the
        // end of the longest chain.
        if at < 0x3fff {
            prev = at as u16;
        }
        n += 1;
    }
    q[6..8].copy_from_slice(&n.to_be_bytes());
    q
}

/// The largest query the screen lets through to its options: three
/// additional records, an OPT of 32 options with 60 KB of padding.
fn fat_opt() -> Vec<u8> {
    let mut q = header(1, 0, 0, 3);
    let mut rdata = Vec::new();
    for i in 0..31u16 {
        rdata.extend_from_slice(&(100 + i).to_be_bytes());
        rdata.extend_from_slice(&[0, 0]);
    }
    rdata.extend_from_slice(&[0, 12]);
    rdata.extend_from_slice(&(60_000u16).to_be_bytes());
    rdata.extend_from_slice(&vec![0; 60_000]);
    q.extend_from_slice(&opt(&rdata));
    for _ in 0..2 {
        q.extend_from_slice(b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x08\x00");
        q.extend_from_slice(&[0xab; 0x800]);
    }
    q
}

/// A question whose name is a pointer to itself.
fn pointer_loop() -> Vec<u8> {
    let mut q = header(0, 0, 0, 0);
    q[5] = 1;
    q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    q
}

fn bench(c: &mut Criterion) {
    let (h, dir) = demo::demo_handler();

    let cases: Vec<(&str, Vec<u8>, Transport)> = vec![
        ("valid_fast", valid(false), Transport::Udp),
        ("valid_general", valid(true), Transport::Udp),
        ("chains_4k_udp", pointer_chains(4096), Transport::Udp),
        ("chains_64k_tcp", pointer_chains(65_535), Transport::Tcp),
        ("fat_opt_64k_tcp", fat_opt(), Transport::Tcp),
        ("pointer_loop", pointer_loop(), Transport::Udp),
    ];
    for (name, q, t) in &cases {
        let r = h.handle(q, SRC, *t).expect("an answer");
        let rcode = r[3] & 0x0f;
        // The fat OPT is a legal query: answered, not refused.
        let valid = name.starts_with("valid") || name.starts_with("fat");
        assert_eq!(rcode == 0, valid, "{name}: rcode {rcode}");
    }
    let mut g = c.benchmark_group("hostile");
    for (name, q, t) in &cases {
        g.bench_function(*name, |b| b.iter(|| h.handle(black_box(q), SRC, *t)));
    }
    g.finish();

    // The ratios, from a plain timing of each case (best of 5 rounds).
    let per_query = |q: &[u8], t: Transport| {
        (0..5)
            .map(|_| {
                let n = 20_000;
                let start = Instant::now();
                for _ in 0..n {
                    black_box(h.handle(black_box(q), SRC, t));
                }
                start.elapsed().as_secs_f64() / f64::from(n)
            })
            .fold(f64::INFINITY, f64::min)
    };
    let fast = per_query(&cases[0].1, cases[0].2);
    let general = per_query(&cases[1].1, cases[1].2);
    println!("worst-case query cost (best of 5 × 20,000):");
    for (name, q, t) in &cases {
        let s = per_query(q, *t);
        println!(
            "  {name:<16} {:>7.0} ns  {:>5.1}× a valid query, {:>4.1}× one on the general path ({} bytes)",
            s * 1e9,
            s / fast,
            s / general,
            q.len()
        );
    }
    drop(dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
