//! The Maglev lookup-table builder of boltz's XDP L4 balancer (Eisenbud et
//! al., NSDI 2016) with Katran's weighted fill. Each backend walks its own
//! permutation of the M slots, `(offset + j·skip) mod M`, with offset and
//! skip from two different hashes of its identity; backends take turns
//! claiming their next free slot, a backend of weight w getting w turns
//! per `max weight`. The result: shares proportional to weights, and a
//! change of one backend moves about 1/N of the slots. The hashes are part
//! of the table's identity: changing them would move every flow.

use std::fmt;

use crate::hash::hash_seeded as hash;

/// Default table size (prime).
pub const DEFAULT_RING_SIZE: u32 = 65537;
/// Largest table size accepted (prime).
pub const MAX_RING_SIZE: u32 = 1_048_573;
/// A table needs at least this many slots per backend with weight > 0.
pub const MIN_SLOTS_PER_BACKEND: u32 = 100;

/// A backend as the builder sees it: a stable identity and a weight (0 =
/// owns no slot).
pub struct Member<'a> {
    /// Stable identity (hashed for the permutation).
    pub key: &'a [u8],
    /// Relative share of the slots.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a table cannot be built.
pub enum MaglevError {
    /// The table size is not prime.
    NotPrime(u32),
    /// The table size is over the limit.
    TooLarge {
        /// The size asked for.
        size: u32,
        /// The largest size accepted.
        max: u32,
    },
    /// Too few slots for the members with a weight.
    TooSmall {
        /// The size asked for.
        size: u32,
        /// Members with a weight.
        members: usize,
        /// The smallest size that fits them.
        min: u64,
    },
    /// No member has a weight.
    NoMembers,
    /// Two members share a key (the index of the second).
    DuplicateKey(usize),
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaglevError::NotPrime(n) => {
                write!(
                    f,
                    "ring size {n} is not prime (next prime: {})",
                    next_prime_at_least(*n)
                )
            }
            MaglevError::TooLarge { size, max } => {
                write!(f, "ring size {size} is larger than {max}")
            }
            MaglevError::TooSmall { size, members, min } => write!(
                f,
                "ring size {size} is too small for {members} backends: needs at least {min} slots \
                 ({MIN_SLOTS_PER_BACKEND} per backend; next prime: {})",
                next_prime_at_least((*min).min(u64::from(MAX_RING_SIZE)) as u32)
            ),
            MaglevError::NoMembers => write!(f, "no backend with a weight above 0"),
            MaglevError::DuplicateKey(i) => write!(f, "backend {i} repeats an earlier backend"),
        }
    }
}

impl std::error::Error for MaglevError {}

/// Deterministic primality for u32 (trial division by 6k±1).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let mut d = 5u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// The smallest prime ≥ `n`.
pub fn next_prime_at_least(n: u32) -> u32 {
    (n.max(2)..=u32::MAX)
        .find(|&k| is_prime(k))
        .unwrap_or(u32::MAX)
}

/// Builds the table from scratch: `table[slot]` = index into `members` of
/// its owner. The same input always gives the same table.
pub fn build(members: &[Member<'_>], size: u32) -> Result<Vec<u32>, MaglevError> {
    rebuild(members, size, None)
}

/// The table before a change: its slots as indexes into `keys`.
pub struct Previous<'a> {
    /// The previous table: slot → index into `keys`.
    pub table: &'a [u32],
    /// The identities the previous table's indexes refer to.
    pub keys: &'a [&'a [u8]],
}

/// Builds the table for `members`, moving as few slots of `prev` as the new
/// shares allow: a member keeps every slot it had up to its new share, a
/// removed member's slots go to the others, an added one takes only slots
/// the others give up. Shares are exact (largest remainder of
/// `size · weight / Σweight`, so within one slot). Without `prev` (or when
/// its size differs) this is a fresh Maglev fill. The same `(members, size,
/// prev)` always gives the same table.
pub fn rebuild(
    members: &[Member<'_>],
    size: u32,
    prev: Option<Previous<'_>>,
) -> Result<Vec<u32>, MaglevError> {
    let live = validate(members, size)?;
    let m = u64::from(size);
    let quota = quotas(members, size);
    const FREE: u32 = u32::MAX;
    let mut table = vec![FREE; size as usize];
    let mut have = vec![0u64; members.len()];
    if let Some(p) = prev.filter(|p| p.table.len() == size as usize) {
        keep_previous(members, &quota, &p, &mut table, &mut have);
    }
    let mut filled: u64 = have.iter().sum();
    // Maglev fill of the free slots: members take turns (a member of weight
    // w gets w turns per max weight) claiming the next free slot of their
    // own permutation (offset + j·skip) mod M, until each has its quota.
    let mut pos: Vec<u64> = live
        .iter()
        .map(|&i| hash(members[i].key, SEED_OFFSET) % m)
        .collect();
    let skip: Vec<u64> = live
        .iter()
        .map(|&i| hash(members[i].key, SEED_SKIP) % (m - 1) + 1)
        .collect();
    let max_weight = live
        .iter()
        .map(|&i| u64::from(members[i].weight))
        .max()
        .unwrap_or(1);
    let mut credit = vec![0u64; live.len()];
    while filled < m {
        for (k, &i) in live.iter().enumerate() {
            credit[k] += u64::from(members[i].weight);
            while credit[k] >= max_weight {
                credit[k] -= max_weight;
                if have[i] >= quota[i] {
                    continue;
                }
                let mut p = pos[k];
                while table[p as usize] != FREE {
                    p += skip[k];
                    if p >= m {
                        p -= m;
                    }
                }
                table[p as usize] = i as u32;
                have[i] += 1;
                filled += 1;
                p += skip[k];
                pos[k] = if p >= m { p - m } else { p };
            }
        }
    }
    Ok(table)
}

/// Checks that a table can be built for `members` at `size` without
/// building it.
pub fn check(members: &[Member<'_>], size: u32) -> Result<(), MaglevError> {
    validate(members, size).map(drop)
}

/// The checks of [`rebuild`]; returns the members with weight > 0 in key
/// order (the order they take turns in, so the table does not depend on
/// the order of the list).
fn validate(members: &[Member<'_>], size: u32) -> Result<Vec<usize>, MaglevError> {
    if size > MAX_RING_SIZE {
        return Err(MaglevError::TooLarge {
            size,
            max: MAX_RING_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime(size));
    }
    let mut all: Vec<usize> = (0..members.len()).collect();
    all.sort_by_key(|&i| (members[i].key, i));
    if let Some(w) = all
        .windows(2)
        .find(|w| members[w[0]].key == members[w[1]].key)
    {
        return Err(MaglevError::DuplicateKey(w[1]));
    }
    let live: Vec<usize> = all.into_iter().filter(|&i| members[i].weight > 0).collect();
    if live.is_empty() {
        return Err(MaglevError::NoMembers);
    }
    let min = u64::from(MIN_SLOTS_PER_BACKEND) * live.len() as u64;
    if u64::from(size) < min {
        return Err(MaglevError::TooSmall {
            size,
            members: live.len(),
            min,
        });
    }
    Ok(live)
}

const SEED_OFFSET: u64 = 0x6d61_676c_6576_0001;
const SEED_SKIP: u64 = 0x6d61_676c_6576_0002;
const SEED_KEEP: u64 = 0x6d61_676c_6576_0003;

/// Exact slot counts: floor of each share, the remainder to the largest
/// fractional parts (ties to the lower key).
fn quotas(members: &[Member<'_>], size: u32) -> Vec<u64> {
    let total: u128 = members.iter().map(|x| u128::from(x.weight)).sum();
    let m = u128::from(size);
    let mut quota: Vec<u64> = members
        .iter()
        .map(|x| (m * u128::from(x.weight) / total) as u64)
        .collect();
    let mut rest: Vec<(u128, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, x)| (m * u128::from(x.weight) % total, i))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(members[a.1].key.cmp(members[b.1].key)));
    let short = u64::from(size) - quota.iter().sum::<u64>();
    for &(_, i) in rest.iter().take(short as usize) {
        quota[i] += 1;
    }
    quota
}

/// Gives each member back its previous slots, up to its quota; a member
/// over quota keeps the slots of lowest `hash(key, slot)` (deterministic).
fn keep_previous(
    members: &[Member<'_>],
    quota: &[u64],
    prev: &Previous<'_>,
    table: &mut [u32],
    have: &mut [u64],
) {
    let index: std::collections::HashMap<&[u8], usize> = members
        .iter()
        .enumerate()
        .filter(|(_, x)| x.weight > 0)
        .map(|(i, x)| (x.key, i))
        .collect();
    // Previous owner → member, resolved once per key rather than per slot.
    let owner: Vec<Option<usize>> = prev.keys.iter().map(|k| index.get(k).copied()).collect();
    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); members.len()];
    for (slot, &o) in prev.table.iter().enumerate() {
        if let Some(&Some(i)) = owner.get(o as usize) {
            owned[i].push(slot as u32);
        }
    }
    for (i, mut slots) in owned.into_iter().enumerate() {
        if slots.len() as u64 > quota[i] {
            let key = members[i].key;
            slots.sort_by_cached_key(|&s| hash_slot(key, s));
            slots.truncate(quota[i] as usize);
        }
        have[i] = slots.len() as u64;
        for s in slots {
            table[s as usize] = i as u32;
        }
    }
}

fn hash_slot(key: &[u8], slot: u32) -> u64 {
    hash(
        key,
        SEED_KEEP ^ u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256).into_bytes())
            .collect()
    }

    fn table_of(keys: &[Vec<u8>], weights: &[u32], size: u32) -> Vec<u32> {
        let members: Vec<Member<'_>> = keys
            .iter()
            .zip(weights)
            .map(|(k, &w)| Member { key: k, weight: w })
            .collect();
        build(&members, size).unwrap()
    }

    fn counts(table: &[u32], n: usize) -> Vec<u64> {
        let mut c = vec![0u64; n];
        for &t in table {
            c[t as usize] += 1;
        }
        c
    }

    #[test]
    fn equal_weights_share_within_one_percent() {
        for n in [1usize, 2, 3, 10, 100, 650] {
            let k = keys(n);
            let c = counts(&table_of(&k, &vec![1; n], DEFAULT_RING_SIZE), n);
            let ideal = f64::from(DEFAULT_RING_SIZE) / n as f64;
            for (i, &got) in c.iter().enumerate() {
                let err = (got as f64 - ideal).abs() / ideal;
                assert!(
                    err <= 0.01,
                    "n={n} backend {i}: {got} slots vs ideal {ideal:.1}"
                );
            }
        }
    }

    #[test]
    fn weighted_shares_within_one_percent() {
        let n = 200;
        let k = keys(n);
        let w: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
        let total: u32 = w.iter().sum();
        let c = counts(&table_of(&k, &w, DEFAULT_RING_SIZE), n);
        for i in 0..n {
            let ideal = f64::from(DEFAULT_RING_SIZE) * f64::from(w[i]) / f64::from(total);
            let err = (c[i] as f64 - ideal).abs() / ideal;
            assert!(
                err <= 0.01,
                "backend {i} weight {}: {} slots vs {ideal:.1}",
                w[i],
                c[i]
            );
        }
    }

    /// Fraction of slots whose owner (by key) differs between two tables.
    fn moved(a: &[u32], ka: &[Vec<u8>], b: &[u32], kb: &[Vec<u8>]) -> f64 {
        let diff = a
            .iter()
            .zip(b)
            .filter(|(x, y)| ka[**x as usize] != kb[**y as usize])
            .count();
        diff as f64 / a.len() as f64
    }

    fn rebuilt(prev: &[u32], pk: &[Vec<u8>], keys: &[Vec<u8>], weights: &[u32]) -> Vec<u32> {
        let pkr: Vec<&[u8]> = pk.iter().map(|k| k.as_slice()).collect();
        let members: Vec<Member<'_>> = keys
            .iter()
            .zip(weights)
            .map(|(k, &w)| Member { key: k, weight: w })
            .collect();
        rebuild(
            &members,
            DEFAULT_RING_SIZE,
            Some(Previous {
                table: prev,
                keys: &pkr,
            }),
        )
        .unwrap()
    }

    #[test]
    fn fresh_tables_move_about_one_nth() {
        // Two fresh builds (no history): Maglev's own disruption, close to 1/N.
        for n in [10usize, 100] {
            let k = keys(n + 1);
            let full = table_of(&k, &vec![1; n + 1], DEFAULT_RING_SIZE);
            let fewer = table_of(&k[..n], &vec![1; n], DEFAULT_RING_SIZE);
            let frac = moved(&full, &k, &fewer, &k[..n]);
            let ideal = 1.0 / (n + 1) as f64;
            assert!(
                frac <= ideal * 2.0,
                "n={n}: fresh rebuild moved {frac:.4} vs ideal {ideal:.4}"
            );
        }
    }

    #[test]
    fn removal_moves_only_the_removed_members_slots() {
        for n in [10usize, 100, 650] {
            let k = keys(n + 1);
            let full = table_of(&k, &vec![1; n + 1], DEFAULT_RING_SIZE);
            let fewer = rebuilt(&full, &k, &k[..n], &vec![1; n]);
            for (a, b) in full.iter().zip(&fewer) {
                if (*a as usize) < n {
                    assert_eq!(a, b, "a survivor's slot moved");
                }
            }
            let frac = moved(&full, &k, &fewer, &k[..n]);
            let ideal = 1.0 / (n + 1) as f64;
            assert!(
                (frac - ideal).abs() / ideal < 0.01,
                "n={n}: moved {frac:.5} vs 1/N {ideal:.5}"
            );
            // Balance holds after the change.
            let c = counts(&fewer, n);
            let share = f64::from(DEFAULT_RING_SIZE) / n as f64;
            assert!(c.iter().all(|&x| (x as f64 - share).abs() <= 1.0));
        }
    }

    #[test]
    fn addition_takes_only_what_others_give_up() {
        let n = 100;
        let k = keys(n + 1);
        let before = table_of(&k[..n], &vec![1; n], DEFAULT_RING_SIZE);
        let after = rebuilt(&before, &k[..n], &k, &vec![1; n + 1]);
        let changed: Vec<usize> = (0..before.len())
            .filter(|&s| before[s] != after[s])
            .collect();
        assert!(
            changed.iter().all(|&s| after[s] as usize == n),
            "a slot moved between old members"
        );
        let ideal = f64::from(DEFAULT_RING_SIZE) / (n + 1) as f64;
        assert!((changed.len() as f64 - ideal).abs() <= 1.0);
    }

    #[test]
    fn reweight_moves_slots_only_to_or_from_the_changed_member() {
        let k = keys(3);
        let before = table_of(&k, &[1, 1, 1], DEFAULT_RING_SIZE);
        let after = rebuilt(&before, &k, &k, &[3, 1, 1]);
        for s in 0..before.len() {
            if before[s] != after[s] {
                assert_eq!(after[s], 0, "slot {s} moved between unchanged members");
            }
        }
        let c = counts(&after, 3);
        assert!((c[0] as f64 - 0.6 * 65537.0).abs() <= 1.0);
        // Same (members, size, prev) → same table.
        assert_eq!(after, rebuilt(&before, &k, &k, &[3, 1, 1]));
    }

    #[test]
    fn weight_zero_owns_nothing_and_acts_like_removal() {
        let k = keys(5);
        let drained = table_of(&k, &[1, 1, 0, 1, 1], DEFAULT_RING_SIZE);
        assert!(drained.iter().all(|&o| o != 2));
        let without: Vec<Vec<u8>> = k
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, k)| k.clone())
            .collect();
        let removed = table_of(&without, &[1; 4], DEFAULT_RING_SIZE);
        assert_eq!(
            moved(&drained, &k, &removed, &without),
            0.0,
            "weight 0 = absent"
        );
    }

    #[test]
    fn same_input_same_table() {
        let k = keys(37);
        let a = table_of(&k, &[3; 37], 65537);
        let b = table_of(&k, &[3; 37], 65537);
        assert_eq!(a, b);
        // The order of the list does not matter, only keys and weights.
        let rev: Vec<Vec<u8>> = k.iter().rev().cloned().collect();
        let r = table_of(&rev, &[3; 37], 65537);
        assert!(a
            .iter()
            .zip(&r)
            .all(|(x, y)| k[*x as usize] == rev[*y as usize]));
        // Golden fingerprint: an accidental change of hash or fill order
        // (which would move every flow in production) fails here.
        let fp = a.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!(fp, GOLDEN, "table fingerprint changed: {fp:#x}");
    }

    const GOLDEN: u64 = 0x57d8_3756_ad9a_074c;

    #[test]
    fn refusals_name_the_problem() {
        let k = keys(700);
        let one = [Member {
            key: &k[0],
            weight: 1,
        }];
        assert_eq!(build(&one, 65536), Err(MaglevError::NotPrime(65536)));
        assert!(build(&one, 65536)
            .unwrap_err()
            .to_string()
            .contains("not prime"));
        assert!(matches!(
            build(&one, 1_048_583),
            Err(MaglevError::TooLarge { .. })
        ));
        let many: Vec<Member<'_>> = k.iter().map(|k| Member { key: k, weight: 1 }).collect();
        let e = build(&many, 65537).unwrap_err();
        assert!(
            matches!(
                e,
                MaglevError::TooSmall {
                    members: 700,
                    min: 70000,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("700 backends"));
        assert_eq!(build(&[], 65537), Err(MaglevError::NoMembers));
        assert_eq!(
            build(
                &[Member {
                    key: &k[0],
                    weight: 0
                }],
                65537
            ),
            Err(MaglevError::NoMembers)
        );
        let dup = [
            Member {
                key: &k[0],
                weight: 1,
            },
            Member {
                key: &k[0],
                weight: 2,
            },
        ];
        assert_eq!(build(&dup, 65537), Err(MaglevError::DuplicateKey(1)));
    }

    #[test]
    fn primes() {
        for (n, p) in [
            (0, false),
            (1, false),
            (2, true),
            (65536, false),
            (65537, true),
            (100_003, true),
            (1_048_573, true),
        ] {
            assert_eq!(is_prime(n), p, "{n}");
        }
        assert_eq!(next_prime_at_least(65536), 65537);
        assert_eq!(next_prime_at_least(100_000), 100_003);
    }
}
