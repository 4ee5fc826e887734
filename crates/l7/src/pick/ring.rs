//! `ring-hash`: consistent hashing on a ring (Karger et al.; Envoy's
//! `ring_hash`). Each backend owns points in proportion to its weight; a
//! key belongs to the first point at or after its hash. The ring is built
//! once per snapshot; a pick walks it from the key's place
//! ([`super::consistent`]).

use std::sync::Arc;

use boltz_core::hash::{fmix64, fnv1a, FNV_OFFSET};

use crate::backend::Backend;

/// Ring-hash rings are scaled down to at most this many points (Envoy's
/// default maximum ring size is 8M; 4M points cost 64 MiB).
const MAX_RING_POINTS: u64 = 1 << 22;

/// The ring: each backend's j-th point at `hash(key "-" j as 8 bytes)`; a point's
/// place depends only on its own backend, so removing one backend moves
/// only that backend's keys.
pub(super) fn build_ring(
    backends: &[Arc<Backend>],
    weights: &[f64],
    vnodes: u32,
) -> Vec<(u64, u32)> {
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|&w| {
            if w > 0.0 && w.is_finite() {
                ((w * f64::from(vnodes)).round().min(MAX_RING_POINTS as f64) as u64).max(1)
            } else {
                0
            }
        })
        .collect();
    let sum: u64 = counts.iter().sum();
    if sum > MAX_RING_POINTS {
        let scale = MAX_RING_POINTS as f64 / sum as f64;
        for c in counts.iter_mut().filter(|c| **c > 0) {
            *c = ((*c as f64 * scale).round() as u64).max(1);
        }
    }
    let mut ring = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
    for (i, (b, &n)) in backends.iter().zip(&counts).enumerate() {
        let base = fnv1a(fnv1a(FNV_OFFSET, b.key.as_bytes()), b"-");
        for j in 0..n {
            ring.push((fmix64(fnv1a(base, &j.to_le_bytes())), i as u32));
        }
    }
    // Colliding points are ordered by key so the ring does not depend on
    // the order of the backend list.
    ring.sort_unstable_by(|a, b| {
        (a.0, &backends[a.1 as usize].key).cmp(&(b.0, &backends[b.1 as usize].key))
    });
    ring
}

/// Backend indexes around the ring, once, from the key's place.
pub(super) fn order(ring: &[(u64, u32)], hash: u64) -> impl Iterator<Item = usize> + '_ {
    let n = ring.len();
    let start = ring.partition_point(|p| p.0 < hash);
    (0..n).map(move |s| ring[(start + s) % n].1 as usize)
}
