//! Tests of the catalogue as a whole (every algorithm: even and weighted
//! shares, eligibility, panic mode, exclusion, slow start) and the pools,
//! options and share counting the families' own tests build on.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use boltz_core::clock::precise_ns;

use super::random::reseed;
use super::round_robin::build_schedule;
use super::*;
use crate::backend::Health;
use crate::breaker::BreakerConfig;

pub(super) fn pool(weights: &[f64]) -> Vec<Arc<Backend>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let addr = format!("127.0.0.1:{}", 10_000 + i).parse().unwrap();
            Arc::new(Backend::new(addr, w, AdminState::Up))
        })
        .collect()
}

pub(super) fn opts() -> PickOptions {
    PickOptions {
        workers: 2,
        // 100 points per backend leave ring shares ±20% apart, which
        // is ring hashing, not a bug; 1000 lets the tests check weights.
        ring_vnodes: 1000,
        ..PickOptions::default()
    }
}

/// Shares of `n` picks with a fresh key per pick for the hash pickers.
pub(super) fn shares(p: &Picker, b: &[Arc<Backend>], n: usize, now: u64) -> Vec<f64> {
    let mut c = vec![0usize; b.len()];
    for k in 0..n {
        let ctx = PickContext {
            hash: Some(hash_key(&(k as u64).to_le_bytes())),
            ..PickContext::at(now)
        };
        c[p.pick(b, &ctx).unwrap()] += 1;
    }
    c.iter().map(|&x| x as f64 / n as f64).collect()
}

pub(super) fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol,
            "{what}: got {got:?}, want {want:?} ± {tol}"
        );
    }
}

#[test]
fn equal_backends_share_evenly() {
    let b = pool(&[1.0; 4]);
    let now = precise_ns();
    for a in Algorithm::ALL {
        reseed(7);
        let p = Picker::new(a, &b, opts());
        // The ring with 100 points per backend is the least even.
        let tol = if a == Algorithm::RingHash { 0.03 } else { 0.02 };
        assert_close(&shares(&p, &b, 40_000, now), &[0.25; 4], tol, a.name());
    }
}

#[test]
fn weights_one_two_three_are_respected() {
    let b = pool(&[1.0, 2.0, 3.0]);
    let want = [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0];
    let now = precise_ns();
    for a in Algorithm::ALL {
        // Round robin ignores weights; the least-* pickers use them
        // only to scale load (idle, the heaviest always wins).
        if matches!(
            a,
            Algorithm::RoundRobin | Algorithm::LeastConnections | Algorithm::LeastTime
        ) {
            continue;
        }
        reseed(11);
        let p = Picker::new(a, &b, opts());
        let tol = if a == Algorithm::RingHash {
            0.04
        } else {
            0.015
        };
        assert_close(&shares(&p, &b, 60_000, now), &want, tol, a.name());
    }
    // Round robin ignores weights.
    let p = Picker::new(Algorithm::RoundRobin, &b, opts());
    assert_close(
        &shares(&p, &b, 6000, now),
        &[1.0 / 3.0; 3],
        1e-9,
        "round-robin",
    );
}

/// Backends 1..=4 made unusable in different ways; 0 and 5 are fine.
fn troubled() -> Vec<Arc<Backend>> {
    let b = pool(&[1.0; 6]);
    let now = precise_ns();
    b[1].set_admin(1.0, AdminState::Drain);
    b[2].ejected_until.store(now + 3_600_000_000_000, Relaxed);
    b[3].set_health(Health::Down);
    b[4].breaker.configure(Some(BreakerConfig {
        failure_rate: 0.5,
        min_requests: 1,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(3600),
        half_open_requests: 1,
    }));
    b[4].breaker.on_result(now, true);
    b
}

#[test]
fn unusable_backends_are_skipped_except_in_panic_mode() {
    let b = troubled();
    let now = precise_ns();
    for a in Algorithm::ALL {
        let p = Picker::new(a, &b, opts());
        let mut seen = [0usize; 6];
        let mut panic_seen = [0usize; 6];
        // Separate loops: alternating would give round robin's shared
        // cursor only even turns in one mode.
        for k in 0..3000u64 {
            let hash = Some(hash_key(&k.to_le_bytes()));
            let ctx = PickContext {
                hash,
                ..PickContext::at(now)
            };
            seen[p.pick(&b, &ctx).unwrap()] += 1;
        }
        for k in 0..3000u64 {
            let hash = Some(hash_key(&k.to_le_bytes()));
            let ctx = PickContext {
                hash,
                panic: true,
                ..PickContext::at(now)
            };
            panic_seen[p.pick(&b, &ctx).unwrap()] += 1;
        }
        assert!(seen[1..5].iter().all(|&x| x == 0), "{}: {seen:?}", a.name());
        assert!(seen[0] > 0 && seen[5] > 0, "{}: {seen:?}", a.name());
        assert_eq!(panic_seen[1], 0, "{}: drained in panic mode", a.name());
        assert!(
            panic_seen
                .iter()
                .enumerate()
                .all(|(i, &x)| i == 1 || x > 200),
            "{}: panic mode {panic_seen:?}",
            a.name()
        );
    }
}

#[test]
fn nothing_eligible_gives_none() {
    let b = troubled();
    let now = precise_ns();
    for a in Algorithm::ALL {
        let p = Picker::new(a, &b, opts());
        let ctx = PickContext {
            exclude: &[0, 5],
            hash: Some(42),
            ..PickContext::at(now)
        };
        assert_eq!(p.pick(&b, &ctx), None, "{}", a.name());
        assert_eq!(p.pick(&[], &ctx), None);
        let z = pool(&[0.0, 0.0]);
        let pz = Picker::new(a, &z, opts());
        assert_eq!(
            pz.pick(&z, &PickContext::at(now)),
            None,
            "{}: weight 0",
            a.name()
        );
    }
}

#[test]
fn excluded_backends_are_not_retried() {
    let b = pool(&[1.0, 1.0, 1.0, 1.0]);
    let now = precise_ns();
    for a in Algorithm::ALL {
        let p = Picker::new(a, &b, opts());
        let mut seen = [0usize; 4];
        for k in 0..2000u64 {
            let ctx = PickContext {
                hash: Some(hash_key(&k.to_le_bytes())),
                exclude: &[0, 2],
                ..PickContext::at(now)
            };
            seen[p.pick(&b, &ctx).unwrap()] += 1;
        }
        assert_eq!(seen[0] + seen[2], 0, "{}: {seen:?}", a.name());
        assert!(seen[1] > 600 && seen[3] > 600, "{}: {seen:?}", a.name());
    }
}

#[test]
fn slow_start_gives_a_fresh_backend_a_small_share() {
    let b = pool(&[1.0; 3]);
    let slow = 10_000_000_000;
    // Backend 2 came back from an ejection 1 s ago; the others have
    // long been in service: its weight is 0.1 + 0.9 × 0.1 = 0.19.
    let back = precise_ns() + 100 * slow;
    b[2].ejected_until.store(back, Relaxed);
    let now = back + slow / 10;
    let fresh = 0.19 / 2.19;
    for a in Algorithm::ALL {
        if a == Algorithm::RoundRobin {
            continue;
        }
        reseed(13);
        let p = Picker::new(
            a,
            &b,
            PickOptions {
                slow_start_ns: slow,
                ..opts()
            },
        );
        let s = shares(&p, &b, 40_000, now);
        if matches!(a, Algorithm::LeastConnections | Algorithm::LeastTime) {
            // Idle, its score 1/0.19 is never the minimum.
            assert_eq!(s[2], 0.0, "{}: {s:?}", a.name());
        } else {
            let tol = if a.uses_hash() { 0.03 } else { 0.015 };
            assert!((s[2] - fresh).abs() < tol, "{}: {s:?} vs {fresh}", a.name());
        }
        // Ramp over: equal again.
        let s = shares(&p, &b, 30_000, back + slow);
        let tol = if a == Algorithm::RingHash { 0.03 } else { 0.02 };
        assert_close(&s, &[1.0 / 3.0; 3], tol, a.name());
    }
}

#[test]
fn integer_weights_keep_ratios() {
    assert_eq!(integer_weights(&[1.0, 2.0, 3.0], 100), [1, 2, 3]);
    assert_eq!(integer_weights(&[0.5, 1.0, 1.5], 100), [1, 2, 3]);
    assert_eq!(
        integer_weights(&[0.0, 2.5, f64::NAN, -1.0], 100),
        [0, 1, 0, 0]
    );
    assert_eq!(integer_weights(&[1000.0, 1.0], 101), [101, 1]);
    assert_eq!(integer_weights(&[0.001, 1.0], 1 << 20), [1, 1000]);
    assert_eq!(build_schedule(&[1, 2, 3]), [2, 1, 0, 2, 1, 2]);
}
