//! Tests of the steering maths: temperature, the draw against the
//! Boltzmann probabilities, greedy cold systems, and how few cells a small
//! price change moves.

use super::temperature::MIN_TEMPERATURE;
use super::*;

fn cand(d: f64, w: f64, mu: f64, id: u64) -> Candidate {
    Candidate {
        distance_km: d,
        weight: w,
        mu,
        id: hash_bytes(&id.to_le_bytes()),
    }
}

#[test]
fn distance_frankfurt_new_york() {
    let fra = LatLon {
        lat: 50.11,
        lon: 8.68,
    };
    let nyc = LatLon {
        lat: 40.71,
        lon: -74.01,
    };
    let d = distance_km(fra, nyc);
    assert!((6150.0..6250.0).contains(&d), "{d}");
}

#[test]
fn auto_temperature_rises_with_blindness_not_with_demand() {
    let t = Temperature::Auto {
        min: 0.05,
        max: 1.0,
    };
    // Total demand does not move it: steering cannot change that.
    assert!((t.at(0.0, 0.0) - 0.05).abs() < 1e-12);
    assert!((t.at(0.0, 0.95) - 0.05).abs() < 1e-12);
    // Stale feeds do.
    assert!((t.at(0.5, 0.3) - 0.525).abs() < 1e-12);
    assert!((t.at(7.0, 0.3) - 1.0).abs() < 1e-12);
    assert!((t.at(f64::NAN, 0.3) - 1.0).abs() < 1e-12);
    assert_eq!(Temperature::Fixed(0.0).at(0.3, 0.3), MIN_TEMPERATURE);
    let old = Temperature::Utilisation {
        min: 0.05,
        max: 1.0,
    };
    assert!((old.at(0.0, 0.5) - 0.525).abs() < 1e-12);
}

#[test]
fn cold_system_is_greedy_and_never_underflows() {
    let cands = [
        cand(9000.0, 1.0, 0.0, 1),
        cand(300.0, 1.0, 0.0, 2),
        cand(6000.0, 1.0, 0.0, 3),
    ];
    let p = probabilities(&cands, 2000.0, MIN_TEMPERATURE);
    assert!((p[1] - 1.0).abs() < 1e-12);
    assert!(p.iter().all(|x| x.is_finite()));
    for seed in 0..1000u64 {
        let mut out = [0usize; 1];
        assert_eq!(
            draw_into(seed, &cands, 2000.0, MIN_TEMPERATURE, &mut out),
            1
        );
        assert_eq!(out[0], 1);
    }
}

#[test]
fn equal_energies_split_by_weight() {
    let cands = [cand(100.0, 1.0, 0.0, 1), cand(100.0, 3.0, 0.0, 2)];
    let p = probabilities(&cands, 2000.0, 0.5);
    assert!((p[1] - 0.75).abs() < 1e-12);
    let n = 40_000u64;
    let mut wins = 0;
    for seed in 0..n {
        let mut out = [0usize; 1];
        draw_into(mix(seed, 99), &cands, 2000.0, 0.5, &mut out);
        wins += (out[0] == 1) as u64;
    }
    let share = wins as f64 / n as f64;
    assert!((share - 0.75).abs() < 0.015, "{share}");
}

#[test]
fn draws_follow_the_boltzmann_probabilities() {
    let cands = [
        cand(500.0, 1.0, 0.0, 1),
        cand(1500.0, 1.0, 0.2, 2),
        cand(2500.0, 2.0, 0.0, 3),
    ];
    let t = 0.7;
    let p = probabilities(&cands, 2000.0, t);
    let n = 60_000u64;
    let mut counts = [0u64; 3];
    for seed in 0..n {
        let mut out = [0usize; 1];
        draw_into(mix(seed, 7), &cands, 2000.0, t, &mut out);
        counts[out[0]] += 1;
    }
    for i in 0..3 {
        let share = counts[i] as f64 / n as f64;
        assert!((share - p[i]).abs() < 0.015, "dc {i}: {share} vs {}", p[i]);
    }
}

#[test]
fn multiple_answers_are_distinct_and_start_with_the_first_draw() {
    let cands: Vec<Candidate> = (0..6)
        .map(|i| cand(100.0 * i as f64, 1.0, 0.0, i))
        .collect();
    for seed in 0..500u64 {
        let mut one = [0usize; 1];
        draw_into(seed, &cands, 2000.0, 0.3, &mut one);
        let mut three = [0usize; 3];
        assert_eq!(draw_into(seed, &cands, 2000.0, 0.3, &mut three), 3);
        assert_eq!(three[0], one[0]);
        assert!(three[0] != three[1] && three[1] != three[2] && three[0] != three[2]);
    }
    let mut many = [0usize; 8];
    assert_eq!(draw_into(1, &cands[..2], 2000.0, 0.3, &mut many), 2);
}

#[test]
fn small_price_change_moves_few_cells() {
    let base = [
        cand(800.0, 1.0, 0.0, 1),
        cand(900.0, 1.0, 0.0, 2),
        cand(1000.0, 1.0, 0.0, 3),
    ];
    let mut bumped = base;
    bumped[0].mu = 0.02;
    let t = 0.5;
    let (p0, p1) = (
        probabilities(&base, 2000.0, t),
        probabilities(&bumped, 2000.0, t),
    );
    let n = 20_000u64;
    let mut moved = 0u64;
    for cell in 0..n {
        let seed = draw_seed(cell, 5, 0);
        let (mut a, mut b) = ([0usize; 1], [0usize; 1]);
        draw_into(seed, &base, 2000.0, t, &mut a);
        draw_into(seed, &bumped, 2000.0, t, &mut b);
        if a != b {
            moved += 1;
            // Only cells leaving the DC whose price rose may move.
            assert_eq!(a[0], 0);
        }
    }
    let expected = p0[0] - p1[0];
    let frac = moved as f64 / n as f64;
    assert!(
        (frac - expected).abs() < 0.01,
        "moved {frac}, expected {expected}"
    );
}
