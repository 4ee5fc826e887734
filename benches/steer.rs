//! The steering decision for 4, 16 and 64 DCs, without geo lookup or wire
//! encoding: (a) `steer::draw_into`, the bare Gumbel-max race over prepared
//! candidates, and (b) `control::decide`, what the DNS handler calls per
//! steered query (distances, logits, race, TTL and mode) on a compiled zone
//! whose DCs are spread over the globe, with a different client location
//! and cell every iteration. Target: decide < 300 ns at 16 DCs.

use std::fmt::Write;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use boltz_gslb::{self as steer, decide, Candidate, Family, LatLon, World, ZoneSet};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hickory_proto::rr::{LowerName, Name};

const SIZES: [usize; 3] = [4, 16, 64];

/// splitmix64: deterministic inputs without an RNG dependency.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Point `i` of `n` on a Fibonacci lattice: evenly spread over the sphere.
fn spread(i: usize, n: usize) -> LatLon {
    let z = 1.0 - (2.0 * i as f64 + 1.0) / n as f64;
    let lon = (i as f64 * 137.507_764_05) % 360.0 - 180.0;
    LatLon {
        lat: z.asin().to_degrees(),
        lon,
    }
}

/// A zone with `n` DCs and `www` steered over all of them.
fn zone_toml(n: usize) -> String {
    let mut t = String::from(
        "origin = \"bench.test.\"\nttl = 300\n\
         soa = { mname = \"ns1.bench.test.\", rname = \"h.bench.test.\", serial = 1, minimum = 60 }\n\
         ns = [\"ns1.bench.test.\"]\n\
         [steering]\ntemperature = \"auto\"\ntemperature_min = 0.05\ntemperature_max = 1.0\n\
         distance_scale_km = 2000\n",
    );
    for i in 0..n {
        let p = spread(i, n);
        write!(
            t,
            "[datacenters.dc{i}]\nlocation = [{:.4}, {:.4}]\ncapacity = 10000\n\
             ipv4 = [\"198.51.{}.{}\"]\n",
            p.lat,
            p.lon,
            i / 200,
            i % 200 + 1
        )
        .unwrap();
    }
    let names: Vec<String> = (0..n).map(|i| format!("\"dc{i}\"")).collect();
    write!(
        t,
        "[records]\nns1 = {{ type = \"A\", values = [\"192.0.2.53\"] }}\n\
         www = {{ type = \"steered\", datacenters = [{}], ttl = 30 }}\n",
        names.join(", ")
    )
    .unwrap();
    t
}

/// 1024 client (location, cell hash) pairs.
fn clients() -> Vec<(LatLon, u64)> {
    let mut rng = 1;
    (0..1024)
        .map(|_| {
            let r = next(&mut rng);
            let loc = LatLon {
                lat: (r % 14_000) as f64 / 100.0 - 70.0,
                lon: ((r >> 20) % 36_000) as f64 / 100.0 - 180.0,
            };
            (loc, next(&mut rng))
        })
        .collect()
}

fn bench_draw(c: &mut Criterion) {
    let mut g = c.benchmark_group("steer/draw_into");
    for n in SIZES {
        let mut rng = 3;
        let cands: Vec<Candidate> = (0..n)
            .map(|i| Candidate {
                distance_km: (next(&mut rng) % 20_000) as f64,
                weight: 1.0,
                mu: 0.0,
                id: steer::hash_bytes(format!("dc{i}").as_bytes()),
            })
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &cands, |b, cands| {
            let (mut seed, mut out) = (0u64, [0usize; 1]);
            b.iter(|| {
                seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                steer::draw_into(black_box(seed), black_box(cands), 2000.0, 0.05, &mut out);
                out[0]
            })
        });
    }
    g.finish();
}

fn bench_decide(c: &mut Criterion) {
    let clients = clients();
    let www = LowerName::new(&Name::from_ascii("www.bench.test.").unwrap());
    let mut g = c.benchmark_group("steer/decide");
    for n in SIZES {
        let zone = ZoneSet::parse_one(Path::new("bench.toml"), &zone_toml(n)).unwrap();
        let world = World::cold(Arc::new(ZoneSet::new(vec![zone])));
        let (zone, view) = (&world.zones.zones[0], &world.views[0]);
        let st = zone.nodes[&www].steered.as_ref().unwrap();
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % clients.len();
                let (loc, cell) = clients[i];
                decide(
                    black_box(zone),
                    view,
                    st,
                    Family::V4,
                    Some(black_box(loc)),
                    black_box(cell),
                    None,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_draw, bench_decide);
criterion_main!(benches);
