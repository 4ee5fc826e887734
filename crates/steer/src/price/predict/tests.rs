use super::*;
use crate::{probabilities, Candidate};

/// Cells on a line (km, rate) and DCs at points of it, as the draw sees them.
fn world() -> (Vec<(f64, f64)>, Vec<f64>) {
    let cells = (0..200)
        .map(|i| {
            let km = f64::from(i) * 10.0;
            (km, if km < 700.0 { 3.0 } else { 1.0 })
        })
        .collect();
    (cells, vec![0.0, 1000.0, 2000.0])
}

fn map_of(cells: &[(f64, f64)], dcs: &[f64]) -> DemandMap {
    DemandMap {
        rate: cells.iter().map(|c| c.1).collect(),
        energy: cells
            .iter()
            .flat_map(|c| dcs.iter().map(move |d| (c.0 - d).abs() / 2000.0))
            .collect(),
        ln_weight: vec![0.0; dcs.len()],
    }
}

/// Load per DC the query path's own probabilities give at prices `mu`.
fn loads(cells: &[(f64, f64)], dcs: &[f64], mu: &[f64], t: f64) -> Vec<f64> {
    let mut load = vec![0.0; dcs.len()];
    for &(km, r) in cells {
        let cands: Vec<Candidate> = dcs
            .iter()
            .enumerate()
            .map(|(i, d)| Candidate {
                distance_km: (km - d).abs(),
                weight: 1.0,
                mu: mu[i],
                id: i as u64,
            })
            .collect();
        for (i, p) in probabilities(&cands, 2000.0, t).iter().enumerate() {
            load[i] += p * r;
        }
    }
    load
}

fn inputs(load: &[f64], cap: &[f64]) -> Vec<DcInput> {
    load.iter()
        .zip(cap)
        .map(|(l, c)| DcInput {
            usable: true,
            capacity: *c,
            utilisation: l / c,
            fresh: true,
        })
        .collect()
}

#[test]
fn one_solve_fits_every_dc_to_its_target() {
    let (cells, dcs) = world();
    let t = 0.05;
    // 400 demand on capacities 120 / 200 / 200: the first DC must shed.
    let cap = [120.0, 200.0, 200.0];
    let mu0 = [0.0; 3];
    let now = loads(&cells, &dcs, &mu0, t);
    assert!(now[0] > cap[0], "{now:?}");
    let tau = [0.97; 3];
    let mu = solve(&map_of(&cells, &dcs), &inputs(&now, &cap), &mu0, &tau, t).unwrap();
    let after = loads(&cells, &dcs, &mu, t);
    for i in 0..3 {
        assert!(
            after[i] <= 0.97 * cap[i] * 1.001,
            "{i}: {after:?} at {mu:?}"
        );
    }
    assert!((after[0] / cap[0] - 0.97).abs() < 1e-3, "{after:?}");
    assert_eq!(
        mu.iter().copied().fold(f64::INFINITY, f64::min),
        0.0,
        "anchored"
    );
}

#[test]
fn a_map_that_sees_half_the_demand_is_calibrated_by_the_measurement() {
    let (cells, dcs) = world();
    let t = 0.05;
    let cap = [120.0, 200.0, 200.0];
    let mu0 = [0.0; 3];
    let now = loads(&cells, &dcs, &mu0, t);
    // The map holds every cell at half its rate: the measured loads say
    // the DCs carry twice what it predicts.
    let mut half = map_of(&cells, &dcs);
    half.rate.iter_mut().for_each(|r| *r *= 0.5);
    let tau = [0.97; 3];
    let mu = solve(&half, &inputs(&now, &cap), &mu0, &tau, t).unwrap();
    let after = loads(&cells, &dcs, &mu, t);
    assert!(
        (after[0] / cap[0] - 0.97).abs() < 1e-3,
        "{after:?} at {mu:?}"
    );
}

#[test]
fn no_demand_or_a_map_of_another_zone_gives_nothing() {
    let (cells, dcs) = world();
    let mut map = map_of(&cells, &dcs);
    let ins = inputs(&[10.0; 3], &[100.0; 3]);
    assert!(solve(&map, &ins[..2], &[0.0; 2], &[0.97; 2], 0.05).is_none());
    map.rate.iter_mut().for_each(|r| *r = 0.0);
    assert!(solve(&map, &ins, &[0.0; 3], &[0.97; 3], 0.05).is_none());
}

#[test]
fn gauss_solves_and_refuses_a_singular_system() {
    let mut a = vec![2.0, 1.0, 1.0, 3.0];
    let mut b = vec![3.0, 5.0];
    let x = gauss(&mut a, &mut b, 2).unwrap();
    assert!(
        (x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12,
        "{x:?}"
    );
    let mut a = vec![1.0, 2.0, 2.0, 4.0];
    let mut b = vec![1.0, 2.0];
    assert!(gauss(&mut a, &mut b, 2).is_none());
}
