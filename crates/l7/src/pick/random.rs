//! Randomness for the catalogue: a thread-local wyrand generator (no
//! lock, no shared cache line) and the weighted draw built on it, which
//! is the `random` algorithm itself, the first step of P2C, and the
//! fallback of every other family when its own structure cannot answer.

use std::cell::Cell;

thread_local! {
    static RNG: Cell<u64> = Cell::new(rng_seed());
}

fn rng_seed() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    // RandomState carries per-process random keys; the thread id and the
    // clock make threads of one process differ.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::thread::current().id().hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .hash(&mut h);
    h.finish()
}

/// wyrand: one add and one 64×64→128 multiply per number, passes BigCrush.
pub(super) fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

/// Uniform in [0, 1).
pub(super) fn unit() -> f64 {
    unit_of(next_u64())
}

/// The top 53 bits of `x` as a number in [0, 1).
pub(super) fn unit_of(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Makes this thread's random sequence repeatable.
pub(crate) fn reseed(seed: u64) {
    RNG.with(|s| s.set(seed));
}

/// A weighted draw among positive weights, `skip` left out (`total` must
/// then exclude its weight).
pub(super) fn draw(w: &[f64], total: f64, skip: Option<usize>) -> Option<usize> {
    let mut r = unit() * total;
    let mut last = None;
    for (i, &x) in w.iter().enumerate() {
        if x <= 0.0 || Some(i) == skip {
            continue;
        }
        if r < x {
            return Some(i);
        }
        r -= x;
        last = Some(i);
    }
    // Rounding can leave r a hair above the last weight.
    last
}
