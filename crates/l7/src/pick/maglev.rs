//! `maglev`: Google's Maglev consistent hashing (NSDI '16) over
//! `boltz_core::maglev`, the table builder `boltz l4` uses too. The
//! table (a prime number of slots, each naming a backend, filled in
//! proportion to weight) is built once per snapshot; a key's slot is its
//! hash modulo the size, and a pick walks on from there
//! ([`super::consistent`]).

use std::sync::Arc;

use boltz_core::maglev;

use super::integer_weights;
use crate::backend::Backend;

/// Maglev weights are scaled to integers summing to at most this.
const MAX_MAGLEV_WEIGHT: u64 = 1 << 20;

/// The Maglev table as backend indexes; empty when no backend has a weight
/// (or there are too many backends for the largest table), which makes
/// maglev picks fall back to a weighted draw.
pub(super) fn build_table(backends: &[Arc<Backend>], weights: &[f64], size: u32) -> Vec<u32> {
    // A repeated address gets no slots of its own (the builder refuses
    // duplicates); its first occurrence takes them.
    let mut seen = std::collections::HashSet::new();
    let mut owner = Vec::new();
    let mut w = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        if seen.insert(b.key.as_str()) {
            owner.push(i as u32);
            w.push(weights[i]);
        }
    }
    let iw = integer_weights(&w, MAX_MAGLEV_WEIGHT);
    let members: Vec<maglev::Member<'_>> = owner
        .iter()
        .zip(&iw)
        .map(|(&i, &weight)| maglev::Member {
            key: backends[i as usize].key.as_bytes(),
            weight,
        })
        .collect();
    let mut size = size.min(maglev::MAX_RING_SIZE);
    if !maglev::is_prime(size) {
        size = maglev::next_prime_at_least(size);
    }
    let table = match maglev::build(&members, size) {
        Err(maglev::MaglevError::TooSmall { min, .. })
            if min <= u64::from(maglev::MAX_RING_SIZE) =>
        {
            maglev::build(&members, maglev::next_prime_at_least(min as u32))
        }
        other => other,
    };
    table
        .map(|t| t.into_iter().map(|m| owner[m as usize]).collect())
        .unwrap_or_default()
}

/// Backend indexes of the table's slots, once round, from the key's slot.
pub(super) fn order(table: &[u32], hash: u64) -> impl Iterator<Item = usize> + '_ {
    let m = table.len();
    let start = if m > 0 { (hash % m as u64) as usize } else { 0 };
    (0..m).map(move |s| table[(start + s) % m] as usize)
}

#[cfg(test)]
mod tests {
    use boltz_core::maglev;

    use crate::pick::tests::{opts, pool};
    use crate::pick::{Algorithm, PickOptions, Picker};

    #[test]
    fn maglev_table_survives_odd_sizes_and_duplicates() {
        let mut b = pool(&[1.0; 3]);
        b.push(b[0].clone());
        let p = Picker::new(
            Algorithm::Maglev,
            &b,
            PickOptions {
                maglev_size: 1000,
                ..opts()
            },
        );
        assert_eq!(p.table.len(), 1009, "made prime");
        let dbg = format!("{p:?}");
        assert!(
            dbg.contains("table_slots: 1009") && dbg.len() < 400,
            "{dbg}"
        );
        assert!(p.table.iter().all(|&i| i < 3), "the duplicate owns nothing");
        let big = pool(&vec![1.0; 700]);
        let p = Picker::new(Algorithm::Maglev, &big, opts());
        assert!(p.table.len() >= 70_000 && maglev::is_prime(p.table.len() as u32));
    }
}
