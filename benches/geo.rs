//! Geo lookup cost on the query path: `GeoDb::lookup` and `Placement::of`
//! (what the handler calls: lookup plus cell hash, behind whatever
//! per-thread location cache the query path has) against a synthetic
//! 50k-network `.mmdb` (IPv4 /16 and /24, IPv6 /32 and /48, each with its
//! own location) built with `MmdbWriter` into a temp file. "cached" repeats
//! one address (tree path and record hot in the CPU caches); "uncached"
//! rotates over 100k distinct addresses, closer to a resolver population.

use std::collections::HashSet;
use std::hint::black_box;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use boltz_gslb::{GeoDb, GeoRecord, MmdbWriter, Placement};
use criterion::{criterion_group, criterion_main, Criterion};
use ipnet::IpNet;

/// splitmix64: deterministic inputs without an RNG dependency.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn build(nets: usize) -> (tempfile::NamedTempFile, Vec<IpNet>) {
    let mut rng = 42;
    let mut w = MmdbWriter::new("boltz bench").with_build_epoch(0);
    let mut inserted = Vec::with_capacity(nets);
    for i in 0..nets {
        let r = next(&mut rng);
        let net = match i % 25 {
            0..=19 => IpNet::new(IpAddr::V4(Ipv4Addr::from(r as u32)), 24),
            20..=22 => IpNet::new(IpAddr::V4(Ipv4Addr::from(r as u32)), 16),
            23 => IpNet::new(
                IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | u128::from(r) << 64)),
                32,
            ),
            _ => IpNet::new(
                IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | u128::from(r) << 64)),
                48,
            ),
        }
        .unwrap()
        .trunc();
        let lat = -60.0 + (i as f64 * 120.0 / nets as f64);
        let lon = -180.0 + ((i * 7919) % 36000) as f64 / 100.0;
        w.insert(net, GeoRecord::new(lat, lon, "ZZ", "EU"));
        inserted.push(net);
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    w.write_to(&mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    (file, inserted)
}

/// `n` distinct addresses, each inside one of the inserted networks.
fn addresses(nets: &[IpNet], n: usize) -> Vec<IpAddr> {
    let mut rng = 7;
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let net = nets[next(&mut rng) as usize % nets.len()];
        let ip = match net {
            IpNet::V4(v) => IpAddr::V4(Ipv4Addr::from(
                u32::from(v.network()) | (next(&mut rng) as u32 & !u32::from(v.netmask())),
            )),
            IpNet::V6(v) => IpAddr::V6(Ipv6Addr::from(
                u128::from(v.network()) | (u128::from(next(&mut rng)) & !u128::from(v.netmask())),
            )),
        };
        if seen.insert(ip) {
            out.push(ip);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let (file, nets) = build(50_000);
    let db = GeoDb::open(file.path()).unwrap();
    let addrs = addresses(&nets, 100_000);
    let hot = addrs[0];
    assert!(db.lookup(hot).location.is_some());

    let mut g = c.benchmark_group("geo");
    g.bench_function("lookup/cached", |b| b.iter(|| db.lookup(black_box(hot))));
    g.bench_function("lookup/uncached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % addrs.len();
            db.lookup(black_box(addrs[i]))
        })
    });
    g.bench_function("placement/uncached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % addrs.len();
            Placement::of(Some(black_box(&db)), black_box(addrs[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
