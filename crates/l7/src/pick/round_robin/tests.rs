//! Tests of the round-robin family: exact sequences, per-worker smooth
//! WRR, shared cursors under threads, turns around an ineligible backend.

use std::sync::Arc;

use boltz_core::clock::precise_ns;

use crate::backend::Health;
use crate::pick::tests::{assert_close, opts, pool, shares};
use crate::pick::{Algorithm, PickContext, PickOptions, Picker};

#[test]
fn weighted_round_robin_is_exact_and_interleaved() {
    let b = pool(&[1.0, 2.0, 3.0]);
    let p = Picker::new(Algorithm::WeightedRoundRobin, &b, opts());
    let ctx = PickContext::at(precise_ns());
    let seq: Vec<usize> = (0..12).map(|_| p.pick(&b, &ctx).unwrap()).collect();
    assert_eq!(seq, [2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2]);
    // Fractional weights in the same ratios give the same schedule.
    let f = pool(&[0.5, 1.0, 1.5]);
    let q = Picker::new(Algorithm::WeightedRoundRobin, &f, opts());
    let seq2: Vec<usize> = (0..12).map(|_| q.pick(&f, &ctx).unwrap()).collect();
    assert_eq!(seq, seq2);
}

#[test]
fn smooth_weighted_round_robin_follows_nginx_per_worker() {
    let b = pool(&[5.0, 1.0, 1.0]);
    let p = Picker::new(Algorithm::SmoothWeightedRoundRobin, &b, opts());
    let now = precise_ns();
    let w0 = PickContext::at(now);
    let w1 = PickContext { worker: 1, ..w0 };
    let mut s0 = Vec::new();
    let mut s1 = Vec::new();
    // Interleaved workers do not disturb each other's sequence.
    for _ in 0..14 {
        s0.push(p.pick(&b, &w0).unwrap());
        s1.push(p.pick(&b, &w1).unwrap());
    }
    let nginx = [0, 0, 1, 0, 2, 0, 0];
    assert_eq!(s0[..7], nginx);
    assert_eq!(s0[7..], nginx);
    assert_eq!(s0, s1);
    // A worker index past the configured count still works.
    let w9 = PickContext { worker: 9, ..w0 };
    assert!(p.pick(&b, &w9).is_some());
}

#[test]
fn smooth_wrr_and_round_robin_under_threads() {
    let b = pool(&[5.0, 1.0, 1.0]);
    for a in [
        Algorithm::SmoothWeightedRoundRobin,
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
    ] {
        let p = Arc::new(Picker::new(
            a,
            &b,
            PickOptions {
                workers: 4,
                ..opts()
            },
        ));
        let now = precise_ns();
        let counts: Vec<Vec<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|worker| {
                    let (p, b) = (&p, &b);
                    s.spawn(move || {
                        let ctx = PickContext {
                            worker,
                            ..PickContext::at(now)
                        };
                        let mut c = vec![0; 3];
                        for _ in 0..7000 {
                            c[p.pick(b, &ctx).unwrap()] += 1;
                        }
                        c
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: Vec<usize> = (0..3).map(|i| counts.iter().map(|c| c[i]).sum()).collect();
        let want = if a == Algorithm::RoundRobin {
            [28_000 / 3 + 1, 28_000 / 3, 28_000 / 3]
        } else {
            [20_000, 4000, 4000]
        };
        // Shared cursors hand out each turn exactly once.
        assert_eq!(total, want, "{}", a.name());
        if a == Algorithm::SmoothWeightedRoundRobin {
            assert!(
                counts.iter().all(|c| c == &[5000, 1000, 1000]),
                "{counts:?}"
            );
        }
    }
}

#[test]
fn round_robin_spreads_evenly_around_a_hole() {
    let b = pool(&[1.0; 4]);
    b[1].set_health(Health::Down);
    let p = Picker::new(Algorithm::RoundRobin, &b, opts());
    let s = shares(&p, &b, 3000, precise_ns());
    assert_close(&s, &[1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0], 1e-9, "rr");
}
