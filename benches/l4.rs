//! Criterion benches of the L4 balancer's pieces:
//! - `maglev_build`: a fresh table for 100 and 1000 backends (pure Rust);
//! - `apply_swap` (root + XDP build): a whole service update for 1000
//!   backends — rebuild from the live table, new inner map, batched fill,
//!   outer swap (which waits for the kernel's grace period);
//! - `program` (root + XDP build): the XDP program alone per packet, timed by
//!   the kernel in `BPF_PROG_TEST_RUN` (new flow, known flow, not a VIP).
//!
//! `cargo bench --bench l4`; benches/compare/l4.sh runs it beside the
//! namespace packet-rate comparison.

use std::hint::black_box;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use boltz_core::maglev::{self, Member};
use boltz_l4::abi;
use boltz_l4::dataplane::{self, Maps, Program};
use boltz_l4::sys;
use boltz_l4::Control;
use boltz_l4::{parse_spec, Vip};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| vec![10, 2, (i / 256) as u8, (i % 256) as u8])
        .collect()
}

fn spec_json(version: u64, n: usize, ring: u32) -> String {
    let b: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"address":"10.2.{}.{}","mac":"02:00:00:00:00:01","weight":{}}}"#,
                i / 256,
                i % 256,
                1 + (i + version as usize) % 3
            )
        })
        .collect();
    format!(
        r#"{{"version":{version},"ring_size":{ring},"backends":[{}]}}"#,
        b.join(",")
    )
}

fn bench_maglev(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for (n, m) in [(100usize, 65537u32), (1000, 100_003)] {
        let k = keys(n);
        let members: Vec<Member<'_>> = k.iter().map(|k| Member { key: k, weight: 1 }).collect();
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}@{m}")),
            &members,
            |b, mem| b.iter(|| black_box(maglev::build(mem, m).unwrap())),
        );
    }
    g.finish();
}

fn xdp_ready() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !dataplane::available() {
        eprintln!("l4 data-path benches skipped: need root and a build with clang");
        return false;
    }
    true
}

fn frame(sport: u16, dst: [u8; 4]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0, 0xcc, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 60, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 7];
    ip.extend_from_slice(&dst);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0, 53, 0, 40, 0, 0]);
    f.resize(14 + 60, 0);
    f
}

fn bench_dataplane(c: &mut Criterion) {
    if !xdp_ready() {
        return;
    }
    let ebpf = dataplane::load(Some(65536)).expect("load");
    let balancer = Control::new(Maps::of(&ebpf).unwrap(), None).unwrap();
    balancer
        .configure([10, 0, 0, 1], [0; 16], [2, 0, 0, 0, 0, 1], 0)
        .unwrap();
    let vip: Vip = "udp:10.0.0.100:53".parse().unwrap();

    let mut g = c.benchmark_group("apply_swap");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    let mut version = 0u64;
    g.bench_function("1000_backends@100003", |b| {
        b.iter(|| {
            version += 1;
            let spec = parse_spec(&vip, spec_json(version, 1000, 100_003).as_bytes()).unwrap();
            balancer.apply(vip, spec).unwrap()
        })
    });
    g.finish();

    // The kernel times the program alone. A run that rewrites the packet
    // (encapsulation) cannot be repeated on the same buffer, so every
    // figure here is one packet per test run; `empty_run` (a runt frame,
    // passed at the first check) is the timing overhead to subtract.
    let prog = dataplane::program_fd(&ebpf, Program::Balancer).unwrap();
    let mut g = c.benchmark_group("program");
    let vip_addr = [10, 0, 0, 100];
    let one_at_a_time = |pkt: &[u8], iters: u64| {
        let total: u64 = (0..iters)
            .map(|_| u64::from(sys::test_run(prog, pkt, 1).unwrap().duration_ns))
            .sum();
        Duration::from_nanos(total)
    };
    let mut runt = frame(1, vip_addr);
    runt.truncate(14 + 10);
    let other = frame(4000, [10, 0, 0, 101]);
    let known = frame(4000, vip_addr);
    g.bench_function("empty_run", |b| b.iter_custom(|n| one_at_a_time(&runt, n)));
    g.bench_function("not_a_vip_pass", |b| {
        b.iter_custom(|n| one_at_a_time(&other, n))
    });
    g.bench_function("known_flow_encap", |b| {
        b.iter_custom(|n| one_at_a_time(&known, n))
    });
    // New flows: the flow's connection-table set is emptied before each run.
    let maps = Maps::of(&ebpf).unwrap();
    let pkts: Vec<Vec<u8>> = (0..4096u16).map(|p| frame(10_000 + p, vip_addr)).collect();
    g.bench_function("new_flow_encap", |b| {
        let mut i = 0usize;
        b.iter_custom(|iters| {
            let mut total = 0u64;
            for _ in 0..iters {
                let key = abi::flow_key(
                    IpAddr::from([192, 0, 2, 7]),
                    10_000 + (i % 4096) as u16,
                    IpAddr::from(vip_addr),
                    53,
                    abi::IPPROTO_UDP,
                );
                let set = abi::flow_set_index(&key, maps.flow_sets);
                sys::update(
                    maps.flows.as_fd(),
                    &set.to_ne_bytes(),
                    &[0; 64],
                    sys::BPF_ANY,
                )
                .unwrap();
                total += u64::from(sys::test_run(prog, &pkts[i % 4096], 1).unwrap().duration_ns);
                i += 1;
            }
            Duration::from_nanos(total)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_maglev, bench_dataplane);
criterion_main!(benches);
