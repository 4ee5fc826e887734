//! `boltzmann` against its formula: shares at a fixed temperature, a slow
//! or busy backend getting less, greedy when idle and spreading when hot,
//! and the configuration's checks.

use boltz_core::clock::precise_ns;

use super::BoltzmannConfig;
use crate::backend::InFlight;
use crate::pick::random::reseed;
use crate::pick::tests::{opts, pool, shares};
use crate::pick::{Algorithm, PickOptions, Picker};

/// A `boltzmann` picker over backends of `capacity` each.
fn picker(
    b: &[std::sync::Arc<crate::backend::Backend>],
    cfg: BoltzmannConfig,
    capacity: f64,
) -> Picker {
    Picker::new(
        Algorithm::Boltzmann,
        b,
        PickOptions {
            boltzmann: cfg,
            capacity: vec![capacity; b.len()],
            ..opts()
        },
    )
}

/// Holds `n[i]` requests in flight on backend `i`.
fn hold(b: &[std::sync::Arc<crate::backend::Backend>], n: &[u32]) -> Vec<InFlight> {
    b.iter()
        .zip(n)
        .flat_map(|(x, &k)| (0..k).map(move |_| x.start()))
        .collect()
}

/// `w · exp(−E/T) / Z` for load-only energies `n / capacity`.
fn expected(weights: &[f64], n: &[u32], capacity: f64, t: f64) -> Vec<f64> {
    let p: Vec<f64> = weights
        .iter()
        .zip(n)
        .map(|(w, &k)| w * (-(f64::from(k) / capacity) / t).exp())
        .collect();
    let z: f64 = p.iter().sum();
    p.iter().map(|x| x / z).collect()
}

/// Each share within five standard deviations of a binomial proportion
/// over `n` picks (a false alarm about once in 3.5 million shares).
fn assert_within_sampling_error(got: &[f64], want: &[f64], n: usize, what: &str) {
    for (g, w) in got.iter().zip(want) {
        let sd = (w * (1.0 - w) / n as f64).sqrt();
        assert!(
            (g - w).abs() <= 5.0 * sd + 1e-4,
            "{what}: got {got:?}, want {want:?} (±5σ, σ = {sd})"
        );
    }
}

fn load_only(t_min: f64, t_max: f64) -> BoltzmannConfig {
    BoltzmannConfig {
        t_min,
        t_max,
        latency_weight: 0.0,
        capacity: None,
    }
}

#[test]
fn shares_follow_w_exp_minus_e_over_t_at_a_fixed_temperature() {
    let weights = [1.0, 2.0, 1.0, 3.0];
    let n = [0, 2, 5, 8];
    let b = pool(&weights);
    let _held = hold(&b, &n);
    let now = precise_ns();
    let picks = 200_000;
    for t in [0.1, 0.4, 2.0] {
        reseed(17);
        let p = picker(&b, load_only(t, t), 10.0);
        let want = expected(&weights, &n, 10.0, t);
        assert_within_sampling_error(&shares(&p, &b, picks, now), &want, picks, &format!("T {t}"));
    }
    // T from the pool's utilisation: U = 15 / 40.
    reseed(19);
    let cfg = load_only(0.05, 2.0);
    let t = 0.05 + 1.95 * 15.0 / 40.0;
    assert!((cfg.temperature(15.0 / 40.0) - t).abs() < 1e-12);
    let p = picker(&b, cfg, 10.0);
    let want = expected(&weights, &n, 10.0, t);
    assert_within_sampling_error(&shares(&p, &b, picks, now), &want, picks, "T from U");
}

#[test]
fn a_busier_or_slower_backend_gets_a_smaller_share() {
    let b = pool(&[1.0; 3]);
    let now = precise_ns();
    reseed(23);
    // Busier: 6 of capacity 20 in flight on backend 2.
    let held = hold(&b, &[0, 0, 6]);
    let p = picker(&b, BoltzmannConfig::default(), 20.0);
    let s = shares(&p, &b, 30_000, now);
    assert!(s[2] < 0.05 && s[0] > 0.45 && s[1] > 0.45, "busy: {s:?}");
    drop(held);

    // Slower: PeakEWMA 1, 1 and 5 ms, nothing in flight.
    for (x, ms) in b.iter().zip([1.0, 1.0, 5.0]) {
        x.ewma.observe(ms * 1e6, now, 1e9);
    }
    let s = shares(&p, &b, 30_000, now);
    // E = 1 − 1.5/5 = 0.7 at T = 0.05: e^−14 of the others' share.
    assert!(s[2] < 1e-3 && s[0] > 0.45 && s[1] > 0.45, "slow: {s:?}");
    // latency_weight = 0 balances on load alone.
    let p = picker(&b, load_only(0.05, 0.5), 20.0);
    let s = shares(&p, &b, 30_000, now);
    assert!(
        s.iter().all(|x| (x - 1.0 / 3.0).abs() < 0.02),
        "load only: {s:?}"
    );
}

#[test]
fn an_idle_pool_is_greedy_and_a_hot_one_spreads() {
    let b = pool(&[1.0; 4]);
    let now = precise_ns();
    let p = picker(&b, load_only(0.05, 0.5), 10.0);
    reseed(29);
    // Idle (U = 3/40, T ≈ 0.084): the backend with 3 in flight is all
    // but avoided, as least-load would.
    let idle = hold(&b, &[3, 0, 0, 0]);
    let s = shares(&p, &b, 40_000, now);
    assert!(s[0] < 0.02, "idle: {s:?}");
    drop(idle);
    // Hot (U > 1, T = t_max): the same 3-request lead costs far less.
    let hot = hold(&b, &[13, 10, 10, 10]);
    let s = shares(&p, &b, 40_000, now);
    assert!(s[0] > 0.12, "hot: {s:?}");
    assert!(s[1..].iter().all(|x| (x - 0.29).abs() < 0.02), "hot: {s:?}");
    drop(hot);
    // Hotter t_max: the shares approach the weights.
    let p = picker(&b, load_only(0.05, 5.0), 10.0);
    let _hot = hold(&b, &[13, 10, 10, 10]);
    let s = shares(&p, &b, 40_000, now);
    assert!(s.iter().all(|x| (x - 0.25).abs() < 0.03), "t_max 5: {s:?}");
}

#[test]
fn weights_decide_between_equal_energies() {
    let weights = [1.0, 2.0, 3.0];
    let b = pool(&weights);
    let _held = hold(&b, &[4, 4, 4]);
    reseed(31);
    let p = picker(&b, BoltzmannConfig::default(), 10.0);
    let picks = 60_000;
    let s = shares(&p, &b, picks, precise_ns());
    assert_within_sampling_error(&s, &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0], picks, "weights");
}

#[test]
fn bad_temperatures_and_capacities_are_refused() {
    assert!(BoltzmannConfig::default().validate("b").is_empty());
    let e = BoltzmannConfig {
        t_min: 2.0,
        t_max: 0.5,
        latency_weight: -1.0,
        capacity: Some(0.0),
    }
    .validate("pools.web.boltzmann");
    let all = e.join("\n");
    for want in [
        "pools.web.boltzmann: t_min (2) must not exceed t_max (0.5)",
        "pools.web.boltzmann.latency_weight: must be 0 or more",
        "pools.web.boltzmann.capacity: must be a positive number",
    ] {
        assert!(all.contains(want), "{want} missing from {all}");
    }
    let e = load_only(0.0, f64::NAN).validate("b").join("\n");
    assert!(
        e.contains("b.t_min: must be a number of at least 0.001, got 0"),
        "{e}"
    );
    assert!(
        e.contains("b.t_max: must be a number of at least 0.001, got NaN"),
        "{e}"
    );
}
