//! Tests of consistent hashing (ring-hash and maglev): keys stay put and
//! few move when the pool changes, bounded loads spill a hot key, and a
//! request without a key is balanced by P2C.

use std::sync::Arc;

use boltz_core::clock::precise_ns;
use boltz_core::hash::hash_key;

use crate::backend::{Backend, Health};
use crate::pick::random::reseed;
use crate::pick::tests::{opts, pool};
use crate::pick::{Algorithm, PickContext, PickOptions, Picker};

fn owner_keys(p: &Picker, b: &[Arc<Backend>], keys: u64, now: u64) -> Vec<String> {
    (0..keys)
        .map(|k| {
            let ctx = PickContext {
                hash: Some(hash_key(format!("client-{k}").as_bytes())),
                ..PickContext::at(now)
            };
            b[p.pick(b, &ctx).unwrap()].key.clone()
        })
        .collect()
}

#[test]
fn consistent_hashing_is_stable_and_moves_little() {
    let now = precise_ns();
    let n = 10;
    let full = pool(&[1.0; 10]);
    // The default ring: 100 points per backend.
    let opts = || PickOptions::default();
    for a in [Algorithm::RingHash, Algorithm::Maglev] {
        let p = Picker::new(a, &full, opts());
        let before = owner_keys(&p, &full, 20_000, now);
        // Same key, same backend: again, from another picker, and from
        // the list in another order.
        assert_eq!(before, owner_keys(&p, &full, 20_000, now));
        let rev: Vec<_> = full.iter().rev().cloned().collect();
        let pr = Picker::new(a, &rev, opts());
        assert_eq!(before, owner_keys(&pr, &rev, 20_000, now), "{}", a.name());

        let gone = full[3].key.clone();
        let fewer: Vec<_> = full.iter().filter(|b| b.key != gone).cloned().collect();
        let pf = Picker::new(a, &fewer, opts());
        let after = owner_keys(&pf, &fewer, 20_000, now);
        let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count() as f64 / 20_000.0;
        let orphaned = before.iter().filter(|k| **k == gone).count() as f64 / 20_000.0;
        assert!(after.iter().all(|k| *k != gone));
        assert!(
            (orphaned - 1.0 / n as f64).abs() < 0.03,
            "{}: {orphaned}",
            a.name()
        );
        if a == Algorithm::RingHash {
            assert_eq!(
                moved, orphaned,
                "ring: only the removed backend's keys move"
            );
        } else {
            // A fresh Maglev fill disturbs a little more than 1/N.
            assert!(moved < 1.6 / n as f64, "maglev moved {moved}");
        }
        // An unhealthy backend's keys go elsewhere, and come back.
        full[3].set_health(Health::Down);
        let down = owner_keys(&p, &full, 20_000, now);
        assert!(down.iter().all(|k| *k != gone));
        let changed = before.iter().zip(&down).filter(|(x, y)| x != y).count() as f64 / 20_000.0;
        assert_eq!(
            changed,
            orphaned,
            "{}: only the down backend's keys move",
            a.name()
        );
        full[3].set_health(Health::Up);
        assert_eq!(before, owner_keys(&p, &full, 20_000, now));
    }
}

#[test]
fn bounded_load_spills_a_hot_key() {
    let b = pool(&[1.0; 4]);
    let now = precise_ns();
    let hot = hash_key(b"hot-client");
    for a in [Algorithm::RingHash, Algorithm::Maglev] {
        let bounded = PickOptions {
            bounded_load: Some(1.25),
            ..opts()
        };
        let p = Picker::new(a, &b, bounded);
        let ctx = PickContext {
            hash: Some(hot),
            ..PickContext::at(now)
        };
        let home = p.pick(&b, &ctx).unwrap();
        // Each request stays in flight: the home backend takes the key
        // while within ceil(1.25 × (total+1) / 4) and then spills.
        let mut held = Vec::new();
        let mut picks = Vec::new();
        for _ in 0..40 {
            let i = p.pick(&b, &ctx).unwrap();
            picks.push(i);
            held.push(b[i].start());
            let total: u32 = b.iter().map(|x| x.in_flight()).sum();
            let cap = (1.25 * f64::from(total) / 4.0).ceil() as u32;
            assert!(
                b.iter().all(|x| x.in_flight() <= cap.max(1)),
                "{}",
                a.name()
            );
        }
        assert_eq!(picks[0], home);
        assert!(
            picks.iter().filter(|&&i| i == home).count() < 20,
            "{}: {picks:?}",
            a.name()
        );
        assert!(
            (0..4).all(|i| picks.contains(&i)),
            "{}: spilled everywhere",
            a.name()
        );
        // Unbounded, the hot key sticks to its backend regardless.
        let q = Picker::new(a, &b, opts());
        assert!((0..20).all(|_| q.pick(&b, &ctx) == Some(home)));
        drop(held);
        assert_eq!(p.pick(&b, &ctx), Some(home), "load gone, key home");
    }
}

#[test]
fn hash_falls_back_to_p2c_without_a_key() {
    let b = pool(&[1.0, 3.0]);
    reseed(17);
    for a in [Algorithm::RingHash, Algorithm::Maglev] {
        let p = Picker::new(a, &b, opts());
        let mut c = [0usize; 2];
        for _ in 0..8000 {
            c[p.pick(&b, &PickContext::at(precise_ns())).unwrap()] += 1;
        }
        assert!((c[1] as f64 / 8000.0 - 0.75).abs() < 0.02, "{c:?}");
    }
}
