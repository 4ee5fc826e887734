//! Requests per client prefix (/24 for IPv4, /56 for IPv6): where the
//! DC's demand comes from, for `/v1/load`'s `clients` (a site's DNS node
//! locates them and reports the DC's demand map, which model-predictive
//! steering fits to capacity).
//!
//! Counted on the request path without a lock: each worker has two open-
//! addressed tables of atomic (prefix, count) slots, and writes to the one
//! the current period selects. The sampler flips the period, then reads and
//! empties the other table. A worker that read the period just before the
//! flip may still count into the table being read: such a request lands in
//! the next period or is lost, which a demand map (an estimate, calibrated
//! by the measured load) tolerates. A prefix that finds no free slot in a
//! few probes counts as `other`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use boltz_core::counter::Padded;
use boltz_core::hash::mix;

/// Slots per table: distinct prefixes a worker tells apart per period.
const SLOTS: usize = 4096;
/// Slots tried before a prefix counts as `other`.
const PROBES: usize = 8;

struct Table {
    keys: Box<[AtomicU64]>,
    counts: Box<[AtomicU64]>,
    other: AtomicU64,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            keys: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            counts: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            other: AtomicU64::new(0),
        }
    }
}

/// The prefix of `ip` as a non-zero key: IPv4 /24 under bit 62, IPv6 /56
/// under bit 63.
fn key(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(a) => (1 << 62) | u64::from(u32::from(a) >> 8),
        IpAddr::V6(a) => (1 << 63) | (u128::from(a) >> 72) as u64,
    }
}

/// The prefix a key stands for, as `a.b.c.0/24` or `x:y:z:w00::/56`.
fn prefix(key: u64) -> String {
    if key & (1 << 63) != 0 {
        let bits = u128::from(key & ((1 << 56) - 1)) << 72;
        format!("{}/56", Ipv6Addr::from(bits))
    } else {
        let bits = ((key & 0xff_ffff) as u32) << 8;
        format!("{}/24", Ipv4Addr::from(bits))
    }
}

impl Table {
    fn count(&self, key: u64) {
        let start = mix(key, 0x636c_6965_6e74) as usize % SLOTS;
        for p in 0..PROBES {
            let i = (start + p) % SLOTS;
            let k = self.keys[i].load(Relaxed);
            if k == key
                || (k == 0
                    && match self.keys[i].compare_exchange(0, key, Relaxed, Relaxed) {
                        Ok(_) => true,
                        Err(now) => now == key,
                    })
            {
                self.counts[i].fetch_add(1, Relaxed);
                return;
            }
        }
        self.other.fetch_add(1, Relaxed);
    }

    /// Adds every slot into `into` and empties the table.
    fn drain(&self, into: &mut std::collections::HashMap<u64, u64>) -> u64 {
        for i in 0..SLOTS {
            let k = self.keys[i].swap(0, Relaxed);
            let n = self.counts[i].swap(0, Relaxed);
            if k != 0 && n > 0 {
                *into.entry(k).or_insert(0) += n;
            }
        }
        self.other.swap(0, Relaxed)
    }
}

/// Every worker's two tables and the period that selects one.
pub struct ClientCounts {
    shards: Box<[Padded<[Table; 2]>]>,
    period: AtomicUsize,
}

impl std::fmt::Debug for ClientCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCounts")
            .field("workers", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// One period's counts: requests per prefix, most first, and those that
/// found no slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Period {
    /// `(prefix, requests)`, most requests first.
    pub prefixes: Vec<(String, u64)>,
    /// Requests whose prefix found no slot.
    pub other: u64,
}

impl ClientCounts {
    /// Tables for `workers` worker threads (other threads share the first).
    pub fn new(workers: usize) -> ClientCounts {
        ClientCounts {
            shards: (0..workers.max(1)).map(|_| Padded::default()).collect(),
            period: AtomicUsize::new(0),
        }
    }

    /// Counts one request from `ip` on the calling worker.
    pub fn count(&self, ip: IpAddr) {
        let shard = &self.shards[super::worker::worker() % self.shards.len()].0;
        shard[self.period.load(Relaxed) & 1].count(key(ip));
    }

    /// Ends the current period and returns its counts.
    pub fn take(&self) -> Period {
        let ended = self.period.fetch_add(1, Relaxed) & 1;
        let mut all = std::collections::HashMap::new();
        let mut other = 0;
        for s in self.shards.iter() {
            other += s.0[ended].drain(&mut all);
        }
        let mut prefixes: Vec<(String, u64)> =
            all.into_iter().map(|(k, n)| (prefix(k), n)).collect();
        prefixes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Period { prefixes, other }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_counted_per_period_and_named() {
        let c = ClientCounts::new(2);
        for _ in 0..3 {
            c.count("81.2.69.160".parse().unwrap());
        }
        c.count("81.2.69.7".parse().unwrap());
        c.count("::ffff:81.2.69.9".parse().unwrap());
        c.count("2001:db8:1:2f00::1".parse().unwrap());
        let p = c.take();
        assert_eq!(
            p.prefixes,
            [
                ("81.2.69.0/24".to_string(), 5),
                ("2001:db8:1:2f00::/56".to_string(), 1)
            ]
        );
        assert_eq!(p.other, 0);
        assert_eq!(c.take(), Period::default(), "a period starts empty");
    }

    #[test]
    fn a_full_table_counts_the_rest_as_other() {
        let c = ClientCounts::new(1);
        for i in 0..(SLOTS as u32 + 500) {
            c.count(IpAddr::V4(Ipv4Addr::from(i << 8)));
        }
        let p = c.take();
        let named: u64 = p.prefixes.iter().map(|x| x.1).sum();
        assert_eq!(named + p.other, SLOTS as u64 + 500);
        assert!(p.other >= 500, "{}", p.other);
    }
}
