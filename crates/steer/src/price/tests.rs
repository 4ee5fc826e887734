//! The controller in a toy world: cells on a line, DCs at points of it,
//! demand split by the Boltzmann probabilities the query path draws from.

use super::step::update_price_step;
use super::*;
use crate::{probabilities, Candidate};

const T: f64 = 0.05;

fn params(controller: Controller) -> PriceParams {
    PriceParams {
        controller,
        target_utilisation: 0.97,
        step: 1.0,
        max: 20.0,
        lag: 1,
        slow_start: 4,
    }
}

/// DCs at km 0, 1000 and 2000 of a line; `cells` cells spread over it with
/// most demand near the first DC.
struct Toy {
    memory: std::cell::RefCell<PriceMemory>,
    dc_km: Vec<f64>,
    capacity: Vec<f64>,
    cells: Vec<(f64, f64)>,
}

impl Toy {
    fn new(capacity: Vec<f64>) -> Toy {
        let cells = (0..200)
            .map(|i| {
                let km = f64::from(i) * 10.0;
                (km, if km < 700.0 { 3.0 } else { 1.0 })
            })
            .collect();
        Toy {
            memory: Default::default(),
            dc_km: vec![0.0, 1000.0, 2000.0],
            capacity,
            cells,
        }
    }

    fn pair_energy(&self) -> Vec<f64> {
        let n = self.dc_km.len();
        (0..n * n)
            .map(|k| (self.dc_km[k / n] - self.dc_km[k % n]).abs() / 2000.0)
            .collect()
    }

    /// Utilisation of every DC at these prices (only usable DCs answer).
    fn utilisation(&self, states: &[PriceState], usable: &[bool]) -> Vec<f64> {
        let mut load = vec![0.0; self.dc_km.len()];
        let idx: Vec<usize> = (0..self.dc_km.len()).filter(|&i| usable[i]).collect();
        for &(km, demand) in &self.cells {
            let cands: Vec<Candidate> = idx
                .iter()
                .map(|&i| Candidate {
                    distance_km: (km - self.dc_km[i]).abs(),
                    weight: 1.0,
                    mu: states[i].mu,
                    id: i as u64,
                })
                .collect();
            for (p, &i) in probabilities(&cands, 2000.0, T).iter().zip(&idx) {
                load[i] += p * demand;
            }
        }
        load.iter()
            .zip(&self.capacity)
            .map(|(l, c)| l / c)
            .collect()
    }

    fn inputs(&self, rho: &[f64], usable: &[bool]) -> Vec<DcInput> {
        rho.iter()
            .zip(&self.capacity)
            .zip(usable)
            .map(|((&u, &c), &ok)| DcInput {
                usable: ok,
                capacity: c,
                utilisation: u,
                fresh: true,
            })
            .collect()
    }

    /// Runs `steps` closed-loop steps; returns the utilisations seen.
    fn run(
        &self,
        states: &mut [PriceState],
        usable: &[bool],
        steps: usize,
        p: &PriceParams,
    ) -> Vec<Vec<f64>> {
        let mut seen = Vec::new();
        for _ in 0..steps {
            let rho = self.utilisation(states, usable);
            self.step(states, &rho, usable, p);
            seen.push(rho);
        }
        seen
    }

    /// One price step on the utilisations `rho`.
    fn step(
        &self,
        states: &mut [PriceState],
        rho: &[f64],
        usable: &[bool],
        p: &PriceParams,
    ) -> ZoneOutcome {
        step_prices(
            states,
            &mut self.memory.borrow_mut(),
            &self.inputs(rho, usable),
            &self.pair_energy(),
            None,
            T,
            p,
        )
    }
}

fn total_demand(t: &Toy) -> f64 {
    t.cells.iter().map(|c| c.1).sum()
}

#[test]
fn under_target_every_price_stays_zero() {
    let toy = Toy::new(vec![1000.0, 1000.0, 1000.0]);
    let mut s = vec![PriceState::default(); 3];
    toy.run(&mut s, &[true; 3], 10, &params(Controller::Balance));
    assert!(
        s.iter().all(|s| s.mu == 0.0 && s.phase == PricePhase::Free),
        "{s:?}"
    );
}

#[test]
fn an_overloaded_dc_sheds_to_capacity_and_the_cheapest_stays_at_zero() {
    // Nearest-only would put ~2/3 of the demand on DC 0.
    let d = total_demand(&Toy::new(vec![1.0; 3]));
    let toy = Toy::new(vec![0.3 * d, 0.4 * d, 0.4 * d]);
    let mut s = vec![PriceState::default(); 3];
    let seen = toy.run(&mut s, &[true; 3], 30, &params(Controller::Balance));
    assert!(seen[0][0] > 1.3, "starts overloaded: {:?}", seen[0]);
    for rho in &seen[20..] {
        assert!(
            rho.iter().all(|&r| r <= 1.0),
            "settled under capacity: {rho:?}"
        );
    }
    let least = s.iter().map(|s| s.mu).fold(f64::INFINITY, f64::min);
    assert_eq!(least, 0.0, "anchored: {s:?}");
    assert!(s[0].mu > 0.0);
    // Settled means the prices stop moving: no creep.
    let before: Vec<f64> = s.iter().map(|s| s.mu).collect();
    toy.run(&mut s, &[true; 3], 200, &params(Controller::Balance));
    let after: Vec<f64> = s.iter().map(|s| s.mu).collect();
    assert_eq!(before, after);
}

#[test]
fn an_infeasible_target_fills_evenly_and_no_price_inflates() {
    let d = total_demand(&Toy::new(vec![1.0; 3]));
    // Global utilisation 1/1.05 ≈ 0.952 > a target of 0.9.
    let toy = Toy::new(vec![0.35 * d, 0.35 * d, 0.35 * d]);
    let mut p = params(Controller::Balance);
    p.target_utilisation = 0.9;
    let mut s = vec![PriceState::default(); 3];
    let seen = toy.run(&mut s, &[true; 3], 1000, &p);
    let rho = &seen[seen.len() - 1];
    // One more step on a copy of the prices, to read its outcome.
    let out = toy.step(&mut s.clone(), rho, &[true; 3], &p);
    assert!(out.infeasible);
    assert!((out.target - 1.0 / 1.05).abs() < 0.01, "{out:?}");
    for r in rho {
        assert!((r - out.target).abs() < 0.05, "evenly filled: {rho:?}");
    }
    assert!(s.iter().all(|s| s.mu < p.max / 2.0), "{s:?}");
    assert_eq!(s.iter().map(|s| s.mu).fold(f64::INFINITY, f64::min), 0.0);
}

#[test]
fn a_returning_dc_enters_where_no_cell_prefers_it_and_ramps() {
    let d = total_demand(&Toy::new(vec![1.0; 3]));
    let toy = Toy::new(vec![0.5 * d, 0.5 * d, 0.5 * d]);
    let p = params(Controller::Balance);
    let mut s = vec![PriceState::default(); 3];
    toy.run(&mut s, &[true; 3], 5, &p);
    toy.run(&mut s, &[false, true, true], 5, &p);
    let pair = toy.pair_energy();
    let rho = toy.utilisation(&s, &[false, true, true]);
    let entry = (pair[1] + s[1].mu).min(pair[2] + s[2].mu) + 5.0 * T;
    // The server admits it the moment it comes back, before any step.
    admit(&mut s, &toy.inputs(&rho, &[true; 3]), &pair, T, &p);
    assert!((s[0].mu - entry).abs() < 1e-9, "{s:?}");
    assert_eq!(s[0].phase, PricePhase::Ramping);
    // Its first interval back takes almost nothing; then it ramps up to its
    // share without ever passing its target.
    let seen = toy.run(&mut s, &[true; 3], 40, &p);
    assert!(seen[0][0] < 0.05, "{:?}", seen[0]);
    // Never more than 10 % above its target.
    assert!(seen.iter().all(|r| r[0] <= 0.97 * 1.1), "{seen:?}");
    assert!(seen[39][0] > 0.5, "came back: {:?}", seen[39]);
}

#[test]
fn a_price_holds_for_the_demand_lag_after_a_move() {
    let d = total_demand(&Toy::new(vec![1.0; 3]));
    let toy = Toy::new(vec![0.4 * d, 0.35 * d, 0.35 * d]);
    let mut p = params(Controller::Balance);
    p.lag = 3;
    let mut s = vec![PriceState::default(); 3];
    let rho = toy.utilisation(&s, &[true; 3]);
    toy.step(&mut s, &rho, &[true; 3], &p);
    let moved = s[0].mu;
    assert!(moved > 0.0);
    for _ in 0..2 {
        toy.step(&mut s, &rho, &[true; 3], &p);
        assert_eq!(s[0].mu, moved);
        assert_eq!(s[0].phase, PricePhase::Holding);
    }
    toy.step(&mut s, &rho, &[true; 3], &p);
    assert!(s[0].mu > moved);
}

#[test]
fn the_step_controller_is_the_first_design() {
    let p = PriceParams {
        target_utilisation: 0.85,
        step: 0.5,
        ..params(Controller::Step)
    };
    let mut mu = 0.0;
    for _ in 0..5 {
        let next = update_price_step(mu, 5.0, &p);
        assert!(next > mu && next - mu <= p.step + 1e-12);
        mu = next;
    }
    for _ in 0..100 {
        mu = update_price_step(mu, 5.0, &p);
    }
    assert_eq!(mu, p.max);
    assert_eq!(update_price_step(0.0, 0.3, &p), 0.0);
    assert_eq!(update_price_step(1.0, f64::NAN, &p), 1.0 - 0.425);
}
