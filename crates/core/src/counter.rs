//! Counters that the hot paths of every component bump without sharing a
//! cache line between cores: [`Padded`] cells, a per-thread [`shard`]
//! index, [`ShardedCounter`] (summed when read) and [`AtomicF64`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Number of counter shards; threads beyond it share.
pub const SHARDS: usize = 16;

static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SHARD: usize = (NEXT_SHARD.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
}

/// This thread's shard, in `0..SHARDS`, fixed for the thread's life.
#[inline]
pub fn shard() -> usize {
    SHARD.with(|s| *s)
}

/// A value on its own cache lines (two, against adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// A counter split over [`SHARDS`] cache-line-padded cells.
pub struct ShardedCounter(Box<[Padded<AtomicU64>]>);

impl Default for ShardedCounter {
    fn default() -> Self {
        ShardedCounter((0..SHARDS).map(|_| Padded::default()).collect())
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl ShardedCounter {
    /// Adds `n` in this thread's cell.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum over all cells.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// An f64 in an `AtomicU64` (bit pattern); races between writers lose one
/// sample at worst, which an average does not notice.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// A cell holding `v`.
    pub fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    /// The value (relaxed).
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    /// Replaces the value (relaxed).
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum() {
        let c = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.add(1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(), 4000);
        let f = AtomicF64::new(1.5);
        f.set(f.get() * 2.0);
        assert_eq!(f.get(), 3.0);
    }
}
