//! The one home of boltz's hashing primitives. Everything that must give
//! the same number on every machine of a fleet and across restarts (the
//! steering draw, L7 affinity keys, Maglev permutations) is built from
//! these, never from std's randomly keyed `RandomState`.
//!
//! The values are pinned: changing any function here moves every steered
//! cell, every sticky L7 client or every Maglev slot of every deployment.

/// FNV-1a's offset basis, the usual start of [`fnv1a`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `h` (start with [`FNV_OFFSET`]).
#[inline]
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// murmur3's fmix64 finaliser: a bijection on u64 with full avalanche.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The splitmix64 finaliser: another bijection with full avalanche (the
/// steering draw's; kept apart from [`fmix64`] because its values are
/// pinned too).
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Combines two hashes into one; not symmetric, so `mix(a, b) != mix(b, a)`.
#[inline]
pub fn mix(a: u64, b: u64) -> u64 {
    splitmix64(a.rotate_left(23) ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Hash of a byte string for the steering draw (names are hashed in lower
/// case by the caller): FNV-1a through [`splitmix64`].
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    splitmix64(fnv1a(FNV_OFFSET, bytes))
}

/// Hash of an affinity key (client IP, header or cookie value): FNV-1a
/// through [`fmix64`], so that short keys that differ in one byte land far
/// apart.
#[inline]
pub fn hash_key(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

/// [`hash_key`] with a seed mixed into the offset basis (Maglev's two
/// permutation hashes).
#[inline]
pub fn hash_seeded(bytes: &[u8], seed: u64) -> u64 {
    fmix64(fnv1a(FNV_OFFSET ^ seed, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned() {
        // A change here moves every sticky client of every deployment.
        assert_eq!(hash_key(b""), fmix64(FNV_OFFSET));
        assert_eq!(hash_key(b"10.0.0.1"), 0xc879_e56d_dc6c_5c88);
        assert_eq!(hash_seeded(b"10.0.0.1", 0), hash_key(b"10.0.0.1"));
        assert_ne!(hash_bytes(b"fra"), hash_bytes(b"iad"));
        assert_ne!(mix(1, 2), mix(2, 1));
    }

    #[test]
    fn affinity_keys_spread() {
        // Keys that differ in one byte differ in about half the bits.
        let mut flips = 0;
        for i in 0..=255u8 {
            flips += (hash_key(&[10, 0, 0, i]) ^ hash_key(&[10, 0, 1, i])).count_ones();
        }
        let avg = f64::from(flips) / 256.0;
        assert!((avg - 32.0).abs() < 2.0, "{avg}");
    }
}
