//! The XDP balancer and decapsulator on synthetic packets through
//! `BPF_PROG_TEST_RUN`: the real verified program, the real maps, filled by
//! the real control plane. Needs root (loading BPF) and a build with clang
//! (the test script installs it); elsewhere each test says why it skips.

use std::net::IpAddr;

use boltz_l4::abi;
use boltz_l4::dataplane::{self, Maps, Program};
use boltz_l4::sys;
use boltz_l4::Control;
use boltz_l4::{parse_spec, Vip};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const SRC4: [u8; 4] = [10, 99, 0, 1];
const SRC6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to load BPF programs");
    }
    if !dataplane::available() {
        return Some(
            "this build has no XDP programs (clang and libbpf-dev were missing at build time)",
        );
    }
    None
}

macro_rules! require_xdp {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

struct Rig {
    ebpf: dataplane::Ebpf,
    balancer: Control,
}

fn rig(flood_limit: u64) -> Rig {
    rig_sized(flood_limit, 4096)
}

/// A rig whose connection table has room for `conn_table` flows.
fn rig_sized(flood_limit: u64, conn_table: u32) -> Rig {
    let ebpf = dataplane::load(Some(conn_table)).expect("load XDP object");
    let maps = Maps::of(&ebpf).expect("maps");
    let balancer = Control::new(maps, None).expect("balancer");
    balancer
        .configure(SRC4, SRC6, LB_MAC, flood_limit)
        .expect("configure");
    Rig { ebpf, balancer }
}

impl Rig {
    fn put(&self, vip: &str, body: &str) -> Vip {
        let vip: Vip = vip.parse().unwrap();
        let spec = parse_spec(&vip, body.as_bytes()).unwrap();
        self.balancer.apply(vip, spec).unwrap();
        vip
    }

    /// Sends a UDP packet from `c:sport` to `v:53`, which must be
    /// encapsulated (XDP_TX); returns the backend it went to.
    fn udp_backend(&self, c: IpAddr, sport: u16, v: IpAddr) -> IpAddr {
        let out = self.run(
            Program::Balancer,
            &packet(c, sport, v, 53, abi::IPPROTO_UDP, b"q"),
        );
        assert_eq!(out.action, XDP_TX);
        IpAddr::from(<[u8; 4]>::try_from(&out.packet[30..34]).unwrap())
    }

    fn run(&self, p: Program, packet: &[u8]) -> sys::TestRun {
        let fd = dataplane::program_fd(&self.ebpf, p).unwrap();
        sys::test_run(fd, packet, 1).unwrap()
    }

    /// The backend the table gives a new flow, from the Rust mirror of the
    /// program's hash.
    fn predict(&self, vip: &Vip, key: &[u8]) -> IpAddr {
        let table = self.balancer.live_table(vip).unwrap();
        let index = table[abi::flow_hash(key) as usize % table.len()];
        let spec = self
            .balancer
            .services()
            .into_iter()
            .find(|s| s.vip == *vip)
            .unwrap()
            .spec;
        spec.backends
            .iter()
            .map(|b| b.address)
            .find(|a| self.balancer.backend_index(*a) == Some(index))
            .unwrap()
    }
}

fn csum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying TCP or UDP from `src:sport` to `dst:dport`.
fn packet(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
    let l4_len = if proto == abi::IPPROTO_TCP { 20 } else { 8 } + payload.len();
    let mut l4 = vec![0u8; l4_len];
    l4[..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == abi::IPPROTO_TCP {
        l4[12] = 5 << 4;
        l4[13] = 0x02; // SYN
        l4[20..].copy_from_slice(payload);
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        l4[8..].copy_from_slice(payload);
    }
    let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xcc];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0x10, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0];
            ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = csum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0x0a, 0xbc, 0xde]);
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&l4);
    f
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const BACKENDS4: &str = r#"{"version":1,"backends":[
    {"address":"10.1.0.1","mac":"02:00:00:00:01:01"},
    {"address":"10.1.0.2","mac":"02:00:00:00:01:02"},
    {"address":"10.1.0.3","mac":"02:00:00:00:01:03"}]}"#;

fn backend_mac(a: IpAddr) -> [u8; 6] {
    let last = match a {
        IpAddr::V4(v) => v.octets()[3],
        IpAddr::V6(v) => v.octets()[15],
    };
    [2, 0, 0, 0, 1, last]
}

#[test]
fn ipv4_udp_and_tcp_are_encapsulated_to_the_predicted_backend() {
    require_xdp!();
    let r = rig(0);
    for (proto, name) in [(abi::IPPROTO_UDP, "udp"), (abi::IPPROTO_TCP, "tcp")] {
        let vip = r.put(&format!("{name}:10.0.0.100:80"), BACKENDS4);
        let mut seen = std::collections::HashSet::new();
        for sport in 1000..1064u16 {
            let (c, v) = (ip("192.0.2.7"), ip("10.0.0.100"));
            let inp = packet(c, sport, v, 80, proto, b"hello");
            let out = r.run(Program::Balancer, &inp);
            assert_eq!(out.action, XDP_TX, "{name} sport {sport}");
            let want = r.predict(&vip, &abi::flow_key(c, sport, v, 80, proto));
            seen.insert(want);
            let p = &out.packet;
            assert_eq!(p.len(), inp.len() + 20);
            assert_eq!(
                &p[..6],
                &backend_mac(want),
                "destination MAC = the backend's"
            );
            assert_eq!(&p[6..12], &LB_MAC);
            assert_eq!(&p[12..14], &[0x08, 0x00]);
            let outer = &p[14..34];
            assert_eq!(outer[0], 0x45);
            assert_eq!(outer[1], 0x10, "TOS copied from the inner header");
            assert_eq!(
                u16::from_be_bytes([outer[2], outer[3]]) as usize,
                inp.len() - 14 + 20
            );
            assert_eq!(outer[9], 4, "protocol IP-in-IP");
            assert_eq!(&outer[12..16], &SRC4);
            assert_eq!(
                IpAddr::from(<[u8; 4]>::try_from(&outer[16..20]).unwrap()),
                want
            );
            assert_eq!(csum(outer), 0, "outer header checksum");
            assert_eq!(&p[34..], &inp[14..], "inner packet untouched");
        }
        assert_eq!(seen.len(), 3, "64 flows reach all three backends");
    }
}

#[test]
fn ipv6_is_encapsulated_in_ipv6() {
    require_xdp!();
    let r = rig(0);
    let vip = r.put(
        "udp:[2001:db8::100]:53",
        r#"{"version":1,"backends":[
            {"address":"2001:db8:1::1","mac":"02:00:00:00:01:01"},
            {"address":"2001:db8:1::2","mac":"02:00:00:00:01:02"}]}"#,
    );
    for sport in 2000..2032u16 {
        let (c, v) = (ip("2001:db8:c::7"), ip("2001:db8::100"));
        let inp = packet(c, sport, v, 53, abi::IPPROTO_UDP, b"query");
        let out = r.run(Program::Balancer, &inp);
        assert_eq!(out.action, XDP_TX);
        let want = r.predict(&vip, &abi::flow_key(c, sport, v, 53, abi::IPPROTO_UDP));
        let p = &out.packet;
        assert_eq!(p.len(), inp.len() + 40);
        assert_eq!(&p[..6], &backend_mac(want));
        assert_eq!(&p[12..14], &[0x86, 0xdd]);
        let outer = &p[14..54];
        assert_eq!(
            &outer[..4],
            &inp[14..18],
            "version, class and flow label from the inner packet"
        );
        assert_eq!(
            u16::from_be_bytes([outer[4], outer[5]]) as usize,
            inp.len() - 14
        );
        assert_eq!(outer[6], 41, "next header IPv6");
        assert_eq!(&outer[8..24], &SRC6);
        assert_eq!(
            IpAddr::from(<[u8; 16]>::try_from(&outer[24..40]).unwrap()),
            want
        );
        assert_eq!(&p[54..], &inp[14..]);
    }
}

#[test]
fn other_traffic_passes_untouched() {
    require_xdp!();
    let r = rig(0);
    r.put("udp:10.0.0.100:53", BACKENDS4);
    let c = ip("192.0.2.7");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "other port",
            packet(c, 1000, ip("10.0.0.100"), 54, abi::IPPROTO_UDP, b"x"),
        ),
        (
            "other protocol",
            packet(c, 1000, ip("10.0.0.100"), 53, abi::IPPROTO_TCP, b"x"),
        ),
        (
            "other address",
            packet(c, 1000, ip("10.0.0.101"), 53, abi::IPPROTO_UDP, b"x"),
        ),
        ("fragment", {
            let mut p = packet(c, 1000, ip("10.0.0.100"), 53, abi::IPPROTO_UDP, b"x");
            p[20] = 0x20; // MF
            p
        }),
        ("IP options", {
            let mut p = packet(c, 1000, ip("10.0.0.100"), 53, abi::IPPROTO_UDP, b"x");
            p[14] = 0x46;
            p.splice(34..34, [1, 1, 1, 0]);
            p
        }),
        ("ARP", {
            let mut p = packet(c, 1000, ip("10.0.0.100"), 53, abi::IPPROTO_UDP, b"x");
            p[12..14].copy_from_slice(&[0x08, 0x06]);
            p
        }),
        ("truncated IPv4 header", {
            let mut p = packet(c, 1000, ip("10.0.0.100"), 53, abi::IPPROTO_UDP, b"x");
            p.truncate(14 + 12);
            p
        }),
    ];
    for (what, inp) in cases {
        let out = r.run(Program::Balancer, &inp);
        assert_eq!(out.action, XDP_PASS, "{what}");
        assert_eq!(out.packet, inp, "{what}: unchanged");
    }
    let c = r.balancer.counters().unwrap();
    assert_eq!(c.global["pass_fragment"], 1);
    assert_eq!(c.global["pass_ip_options"], 1);
    assert_eq!(c.global["pass_not_ip"], 1);
    assert_eq!(c.global["pass_not_vip"], 3);
    assert_eq!(c.global["pass_short"], 1);
}

#[test]
fn l2_mode_rewrites_only_the_destination_mac() {
    require_xdp!();
    let r = rig(0);
    let body = BACKENDS4.replace("\"version\":1", "\"version\":1,\"forwarding\":\"l2\"");
    let vip = r.put("tcp:10.0.0.100:443", &body);
    let (c, v) = (ip("192.0.2.9"), ip("10.0.0.100"));
    let inp = packet(c, 5555, v, 443, abi::IPPROTO_TCP, b"");
    let out = r.run(Program::Balancer, &inp);
    assert_eq!(out.action, XDP_TX);
    let want = r.predict(&vip, &abi::flow_key(c, 5555, v, 443, abi::IPPROTO_TCP));
    assert_eq!(&out.packet[..6], &backend_mac(want));
    assert_eq!(&out.packet[6..12], &LB_MAC);
    assert_eq!(&out.packet[12..], &inp[12..]);
}

#[test]
fn known_flows_keep_their_backend_across_a_reweight_and_a_drain() {
    require_xdp!();
    let r = rig(0);
    let vip = r.put("udp:10.0.0.100:53", BACKENDS4);
    let v = ip("10.0.0.100");
    let c = ip("192.0.2.50");
    let send = |sport: u16| r.udp_backend(c, sport, v);
    let first: Vec<IpAddr> = (3000..3200).map(send).collect();
    // Drain 10.1.0.1 and give 10.1.0.3 weight 5: the table changes a lot.
    r.put(
        "udp:10.0.0.100:53",
        r#"{"version":2,"backends":[
            {"address":"10.1.0.1","mac":"02:00:00:00:01:01","state":"drain"},
            {"address":"10.1.0.2","mac":"02:00:00:00:01:02"},
            {"address":"10.1.0.3","mac":"02:00:00:00:01:03","weight":5}]}"#,
    );
    let again: Vec<IpAddr> = (3000..3200).map(send).collect();
    assert_eq!(first, again, "established flows stay where they were");
    let moved_by_table = (3000..3200u16)
        .zip(&first)
        .filter(|(p, b)| r.predict(&vip, &abi::flow_key(c, *p, v, 53, abi::IPPROTO_UDP)) != **b)
        .count();
    assert!(
        moved_by_table > 20,
        "the new table does send {moved_by_table} of these flows elsewhere"
    );
    for sport in 4000..4200 {
        assert_ne!(
            send(sport),
            ip("10.1.0.1"),
            "a drained backend gets no new flow"
        );
    }
    // Removing the backend altogether re-balances its flows.
    r.put(
        "udp:10.0.0.100:53",
        r#"{"version":3,"backends":[
            {"address":"10.1.0.2","mac":"02:00:00:00:01:02"},
            {"address":"10.1.0.3","mac":"02:00:00:00:01:03"}]}"#,
    );
    for (sport, b) in (3000..3200).zip(&first) {
        let now = send(sport);
        if *b == ip("10.1.0.1") {
            assert_ne!(now, *b);
        } else {
            assert_eq!(now, *b);
        }
    }
    let c = r.balancer.counters().unwrap();
    assert!(c.global["lru_hit"] >= 200);
}

#[test]
fn a_full_set_evicts_its_least_recently_used_flow() {
    require_xdp!();
    // 8 slots: the whole table is one set.
    let r = rig_sized(0, 8);
    let vip = r.put("udp:10.0.0.100:53", BACKENDS4);
    let (c, v) = (ip("192.0.2.60"), ip("10.0.0.100"));
    let send = |sport: u16| r.udp_backend(c, sport, v);
    let key = |sport: u16| abi::flow_key(c, sport, v, 53, abi::IPPROTO_UDP);
    // The oldest flow is one that the table would not send to 10.1.0.1.
    let oldest = (5000..6000)
        .find(|p| r.predict(&vip, &key(*p)) != ip("10.1.0.1"))
        .unwrap();
    let others: Vec<u16> = (oldest + 1..oldest + 8).collect();
    let first = send(oldest);
    let before: Vec<IpAddr> = others.iter().map(|p| send(*p)).collect();
    let (per_vip, _) = r.balancer.active_flows(60_000_000_000).unwrap();
    assert_eq!(per_vip.values().sum::<u64>(), 8, "the set is full");

    // One stamp later the seven others are used again, then a new flow
    // comes: the oldest is the one to go.
    let stamp = abi::flow_stamp(boltz_core::clock::coarse_ns());
    while abi::flow_stamp(boltz_core::clock::coarse_ns()) == stamp {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for p in &others {
        send(*p);
    }
    send(oldest + 100);
    let c0 = r.balancer.counters().unwrap();

    // Drain all but 10.1.0.1: flows in the table stay, others go there.
    r.put(
        "udp:10.0.0.100:53",
        r#"{"version":2,"backends":[
            {"address":"10.1.0.1","mac":"02:00:00:00:01:01"},
            {"address":"10.1.0.2","mac":"02:00:00:00:01:02","state":"drain"},
            {"address":"10.1.0.3","mac":"02:00:00:00:01:03","state":"drain"}]}"#,
    );
    let after: Vec<IpAddr> = others.iter().map(|p| send(*p)).collect();
    assert_eq!(before, after, "recently used flows keep their backend");
    assert_ne!(first, ip("10.1.0.1"));
    assert_eq!(
        send(oldest),
        ip("10.1.0.1"),
        "the least recently used flow was evicted"
    );
    let c1 = r.balancer.counters().unwrap();
    assert_eq!(c1.global["lru_hit"] - c0.global["lru_hit"], 7);
    assert_eq!(c1.global["lru_miss"] - c0.global["lru_miss"], 1);
}

#[test]
fn retired_backends_and_removed_vips_leave_no_entries() {
    require_xdp!();
    let r = rig(0);
    let vip = r.put("udp:10.0.0.100:53", BACKENDS4);
    let (c, v) = (ip("192.0.2.70"), ip("10.0.0.100"));
    for sport in 7000..7300 {
        let out = r.run(
            Program::Balancer,
            &packet(c, sport, v, 53, abi::IPPROTO_UDP, b"q"),
        );
        assert_eq!(out.action, XDP_TX);
    }
    let gone = r.balancer.backend_index(ip("10.1.0.1")).unwrap();
    let (per_vip, per_backend) = r.balancer.active_flows(60_000_000_000).unwrap();
    assert_eq!(per_vip.values().sum::<u64>(), 300);
    assert!(per_backend[&gone] > 50);
    r.put(
        "udp:10.0.0.100:53",
        r#"{"version":2,"backends":[
            {"address":"10.1.0.2","mac":"02:00:00:00:01:02"},
            {"address":"10.1.0.3","mac":"02:00:00:00:01:03"}]}"#,
    );
    let (per_vip, per_backend) = r.balancer.active_flows(60_000_000_000).unwrap();
    assert!(!per_backend.contains_key(&gone), "swept: {per_backend:?}");
    let left = per_vip.values().sum::<u64>();
    assert_eq!(left, per_backend.values().sum::<u64>());
    assert!(
        left < 250,
        "only the other backends' flows are left: {left}"
    );
    assert!(r.balancer.remove(&vip).unwrap());
    let (per_vip, _) = r.balancer.active_flows(60_000_000_000).unwrap();
    assert!(
        per_vip.is_empty(),
        "a removed VIP's flows are swept: {per_vip:?}"
    );
}

#[test]
fn flood_guard_stops_inserting_new_flows() {
    require_xdp!();
    // The guard counts per CPU: keep this thread (and its test runs) on one.
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0
        );
    }
    let r = rig(50);
    r.put("tcp:10.0.0.100:80", BACKENDS4);
    for sport in 0..200u16 {
        let out = r.run(
            Program::Balancer,
            &packet(
                ip("198.51.100.1"),
                10000 + sport,
                ip("10.0.0.100"),
                80,
                abi::IPPROTO_TCP,
                b"",
            ),
        );
        assert_eq!(
            out.action, XDP_TX,
            "flows over the limit are still forwarded"
        );
    }
    let c = r.balancer.counters().unwrap();
    assert_eq!(c.global["flood_skip"], 150);
    let (per_vip, _) = r.balancer.active_flows(60_000_000_000).unwrap();
    assert_eq!(
        per_vip.values().sum::<u64>(),
        50,
        "only 50 entries in the connection table"
    );
}

#[test]
fn no_backend_up_drops_and_counts() {
    require_xdp!();
    let r = rig(0);
    r.put(
        "udp:10.0.0.100:53",
        r#"{"version":1,"backends":[{"address":"10.1.0.1","state":"drain"}]}"#,
    );
    let out = r.run(
        Program::Balancer,
        &packet(
            ip("192.0.2.1"),
            1,
            ip("10.0.0.100"),
            53,
            abi::IPPROTO_UDP,
            b"",
        ),
    );
    assert_eq!(out.action, XDP_DROP);
    assert_eq!(r.balancer.counters().unwrap().global["drop_no_backend"], 1);
}

#[test]
fn decap_strips_the_outer_header() {
    require_xdp!();
    let r = rig(0);
    r.put("udp:10.0.0.100:53", BACKENDS4);
    let inp = packet(
        ip("192.0.2.7"),
        1234,
        ip("10.0.0.100"),
        53,
        abi::IPPROTO_UDP,
        b"abc",
    );
    let enc = r.run(Program::Balancer, &inp).packet;
    let out = r.run(Program::Decap, &enc);
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(&out.packet[12..], &inp[12..], "inner packet restored");
    let inp6 = packet(
        ip("2001:db8:c::7"),
        1,
        ip("2001:db8::100"),
        53,
        abi::IPPROTO_UDP,
        b"abc",
    );
    r.put(
        "udp:[2001:db8::100]:53",
        r#"{"version":1,"backends":[{"address":"2001:db8:1::1","mac":"02:00:00:00:01:01"}]}"#,
    );
    let enc6 = r.run(Program::Balancer, &inp6).packet;
    assert_eq!(enc6.len(), inp6.len() + 40);
    let out6 = r.run(Program::Decap, &enc6);
    assert_eq!(&out6.packet[12..], &inp6[12..]);
    // Plain packets pass through decap unchanged.
    let plain = r.run(Program::Decap, &inp);
    assert_eq!((plain.action, plain.packet), (XDP_PASS, inp));
}

#[test]
fn tables_swap_without_a_gap() {
    require_xdp!();
    let r = rig(0);
    // Every version of the table answers: 60 swaps, each checked at once.
    for version in 1..=60u64 {
        let w = 1 + version % 4;
        r.put(
            "udp:10.0.0.100:53",
            &format!(
                r#"{{"version":{version},"backends":[
                {{"address":"10.1.0.1","mac":"02:00:00:00:01:01","weight":{w}}},
                {{"address":"10.1.0.2","mac":"02:00:00:00:01:02"}}]}}"#
            ),
        );
        let out = r.run(
            Program::Balancer,
            &packet(
                ip("192.0.2.1"),
                version as u16,
                ip("10.0.0.100"),
                53,
                abi::IPPROTO_UDP,
                b"",
            ),
        );
        assert_eq!(out.action, XDP_TX, "version {version}");
    }
}
