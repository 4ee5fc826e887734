//! The byte layouts shared with the XDP program (`bpf/abi.h`): map keys
//! and values, flag bits, counter indexes, and the flow hash
//! (`bpf/hash.h`). The C structs and these encoders must agree byte for
//! byte; the program tests (`tests/l4/program.rs`) catch any drift by
//! predicting the program's choice of backend from `flow_hash`.

use std::net::IpAddr;

/// VIPs the program can hold.
pub const MAX_VIPS: u32 = 512;
/// Backends the program can hold.
pub const MAX_BACKENDS: u32 = 4096;

/// VIP flag: forward by MAC rewrite (L2), not IP-in-IP.
pub const VIP_L2: u32 = 1;
/// Backend flag: in use; connection-table entries to it stay valid.
pub const BACKEND_ACTIVE: u8 = 1;
/// Backend flag: its MAC is set; no FIB lookup.
pub const BACKEND_MAC: u8 = 2;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Names of the global per-CPU counters, in the program's index order.
pub const COUNTERS: [&str; 20] = [
    "lru_hit",
    "lru_miss",
    "pass_not_vip",
    "pass_fragment",
    "pass_ip_options",
    "pass_not_ip",
    "pass_ipv6_ext",
    "drop_no_neigh",
    "pass_short",
    "drop_no_backend",
    "drop_family",
    "drop_encap",
    "drop_no_route",
    "drop_no_mac",
    "flood_skip",
    "tx",
    "redirect",
    "decap_v4",
    "decap_v6",
    "decap_pass",
];

/// 16 address bytes: IPv4 in the first four, the rest zero.
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        4
    } else {
        6
    }
}

/// `struct vip_key` (20 bytes).
pub fn vip_key(addr: IpAddr, port: u16, proto: u8) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&addr16(addr));
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k[19] = family(addr);
    k
}

/// `struct vip_meta` (16 bytes).
pub fn vip_meta(id: u32, tag: u32, flags: u32) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..4].copy_from_slice(&id.to_ne_bytes());
    v[4..8].copy_from_slice(&tag.to_ne_bytes());
    v[8..12].copy_from_slice(&flags.to_ne_bytes());
    v
}

/// `struct backend` (24 bytes).
pub fn backend(addr: IpAddr, mac: Option<[u8; 6]>, flags: u8) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..16].copy_from_slice(&addr16(addr));
    if let Some(m) = mac {
        b[16..22].copy_from_slice(&m);
    }
    b[22] = family(addr);
    b[23] = flags | if mac.is_some() { BACKEND_MAC } else { 0 };
    b
}

/// `struct config` (40 bytes). `flow_sets` is the connection table's
/// number of sets (a power of two).
pub fn config(
    src4: [u8; 4],
    src6: [u8; 16],
    smac: [u8; 6],
    flood_limit: u64,
    flow_sets: u32,
) -> [u8; 40] {
    let mut c = [0u8; 40];
    c[..4].copy_from_slice(&src4);
    c[4..8].copy_from_slice(&flow_sets.saturating_sub(1).to_ne_bytes());
    c[8..24].copy_from_slice(&src6);
    c[24..30].copy_from_slice(&smac);
    c[32..40].copy_from_slice(&flood_limit.to_ne_bytes());
    c
}

/// The connection-table key of a packet from `src:sport` to `dst:dport`:
/// `struct flow_key4` (16 bytes) for IPv4, `struct flow_key` (40) for IPv6.
pub fn flow_key(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> Vec<u8> {
    if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) {
        let mut k = vec![0u8; 16];
        k[..4].copy_from_slice(&s.octets());
        k[4..8].copy_from_slice(&d.octets());
        k[8..10].copy_from_slice(&sport.to_be_bytes());
        k[10..12].copy_from_slice(&dport.to_be_bytes());
        k[12] = proto;
        return k;
    }
    let mut k = vec![0u8; 40];
    k[..16].copy_from_slice(&addr16(src));
    k[16..32].copy_from_slice(&addr16(dst));
    k[32..34].copy_from_slice(&sport.to_be_bytes());
    k[34..36].copy_from_slice(&dport.to_be_bytes());
    k[36] = proto;
    k[37] = family(dst);
    k
}

/// Slots per set of the connection table (`struct flow_set`: 64 bytes).
pub const FLOW_WAYS: usize = 8;
const FP_SHIFT: u32 = 37;
const STAMP_SHIFT: u32 = 21;
const STAMP_NS_SHIFT: u32 = 30;
const VIP_SHIFT: u32 = 12;

/// The connection table's number of sets for room for `entries` flows:
/// a power of two, at least one.
pub fn flow_sets(entries: u32) -> u32 {
    (entries.max(1).next_power_of_two() / FLOW_WAYS as u32).max(1)
}

/// A connection-table stamp: coarse-clock ns in units of 2^30 ns, mod 2^16.
pub fn flow_stamp(ns: u64) -> u16 {
    (ns >> STAMP_NS_SHIFT) as u16
}

/// How long ago `stamp` was, in ns, at `now_ns` (mod 2^16 stamps, ~19 h).
pub fn flow_age_ns(stamp: u16, now_ns: u64) -> u64 {
    u64::from(flow_stamp(now_ns).wrapping_sub(stamp)) << STAMP_NS_SHIFT
}

/// One used slot of the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSlot {
    /// 27 bits of the flow's second hash (seeded with its VIP's tag).
    pub fingerprint: u32,
    /// Coarse time of the last packet, in ~1.07 s units (mod 2^16).
    pub stamp: u16,
    /// The VIP's id.
    pub vip: u32,
    /// The backend's index.
    pub backend: u32,
}

impl FlowSlot {
    /// Decodes a slot; `None` for an empty one.
    pub fn parse(v: u64) -> Option<FlowSlot> {
        (v != 0).then_some(FlowSlot {
            fingerprint: (v >> FP_SHIFT) as u32,
            stamp: (v >> STAMP_SHIFT) as u16,
            vip: ((v >> VIP_SHIFT) & 0x1ff) as u32,
            backend: (v & 0xfff) as u32,
        })
    }

    /// The slot the program writes for a flow with flow key `key` of the
    /// VIP (`vip` id, `tag`) sent to `backend`, at stamp `stamp`.
    pub fn of(key: &[u8], vip: u32, tag: u32, backend: u32, stamp: u16) -> FlowSlot {
        FlowSlot {
            fingerprint: (murmur3_words(key, tag) >> 5) | 1,
            stamp,
            vip,
            backend,
        }
    }

    /// The slot as the program stores it (one 64-bit word).
    pub fn encode(&self) -> u64 {
        (u64::from(self.fingerprint) << FP_SHIFT)
            | (u64::from(self.stamp) << STAMP_SHIFT)
            | (u64::from(self.vip) << VIP_SHIFT)
            | u64::from(self.backend)
    }
}

/// The set of the connection table that holds the flow with key `key`.
pub fn flow_set_index(key: &[u8], sets: u32) -> u32 {
    flow_hash(key) & (sets - 1)
}

/// The program's flow hash: MurmurHash3 x86_32 over the key's little-endian
/// words (the BPF target is little-endian on x86) with seed "bolt". The
/// slot of a new flow is 1 + hash % ring size.
pub fn flow_hash(key: &[u8]) -> u32 {
    murmur3_words(key, 0x626f_6c74)
}

/// MurmurHash3 x86_32 of `bytes` whose length is a multiple of four.
fn murmur3_words(bytes: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    for w in bytes.chunks_exact(4) {
        let mut x = u32::from_le_bytes(w.try_into().expect("4 bytes")).wrapping_mul(0xcc9e_2d51);
        x = x.rotate_left(15).wrapping_mul(0x1b87_3593);
        h = (h ^ x)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_reference_vectors() {
        // Published MurmurHash3_x86_32 test vectors (whole-word inputs).
        assert_eq!(murmur3_words(b"", 0), 0);
        assert_eq!(murmur3_words(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_words(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_words(&[0, 0, 0, 0], 0), 0x2362_f9de);
        assert_eq!(murmur3_words(b"aaaa", 0x9747_b28c), 0x5a97_808a);
    }

    #[test]
    fn layouts() {
        let k = vip_key("10.0.0.1".parse().unwrap(), 80, IPPROTO_TCP);
        assert_eq!(&k[..4], &[10, 0, 0, 1]);
        assert_eq!(&k[16..], &[0, 80, 6, 4]);
        let b = backend(
            "2001:db8::1".parse().unwrap(),
            Some([2, 0, 0, 0, 0, 1]),
            BACKEND_ACTIVE,
        );
        assert_eq!(b[22], 6);
        assert_eq!(b[23], BACKEND_ACTIVE | BACKEND_MAC);
        let f = flow_key(
            "10.0.0.2".parse().unwrap(),
            1000,
            "10.0.0.1".parse().unwrap(),
            80,
            17,
        );
        assert_eq!(f, [10, 0, 0, 2, 10, 0, 0, 1, 3, 0xe8, 0, 80, 17, 0, 0, 0]);
        let f6 = flow_key(
            "2001:db8::2".parse().unwrap(),
            1000,
            "2001:db8::1".parse().unwrap(),
            80,
            17,
        );
        assert_eq!(f6.len(), 40);
        assert_eq!(&f6[32..38], &[3, 0xe8, 0, 80, 17, 6]);
        let c = config([10, 0, 0, 1], [0; 16], [0; 6], 0, flow_sets(262_144));
        assert_eq!(u32::from_ne_bytes(c[4..8].try_into().unwrap()), 32_767);
    }

    #[test]
    fn flow_slots() {
        assert_eq!(flow_sets(262_144), 32_768);
        assert_eq!(flow_sets(200_000), 32_768);
        assert_eq!(flow_sets(1), 1);
        let s = FlowSlot::of(&[1, 2, 3, 4], 511, 7, 4095, 0xffff);
        assert_eq!(s.fingerprint & 1, 1);
        assert!(s.fingerprint < 1 << 27);
        assert_eq!(FlowSlot::parse(s.encode()), Some(s));
        assert_eq!(FlowSlot::parse(0), None);
        let t = FlowSlot::of(&[1, 2, 3, 4], 511, 8, 4095, 0xffff);
        assert_ne!(
            s.fingerprint, t.fingerprint,
            "the VIP's tag seeds the fingerprint"
        );
        // Ages wrap with the 16-bit stamp.
        let now = 5u64 << 30;
        assert_eq!(flow_age_ns(flow_stamp(now), now), 0);
        assert_eq!(flow_age_ns(0xffff, now), 6 << 30);
    }
}
