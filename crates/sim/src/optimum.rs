//! The capacity-respecting optimum: the least demand-weighted distance at
//! which all demand fits every usable DC's capacity (a transportation
//! problem), solved as a linear program by `good_lp` over the pure-Rust
//! `microlp` simplex. It is the physical limit of geo steering that the
//! summary's ratios are taken against.

use std::collections::HashMap;

use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel};

use boltz_steer::{LatLon, UnitVec};

/// Demand at one place.
#[derive(Clone, Copy, Debug)]
pub struct Demand {
    /// Where.
    pub at: LatLon,
    /// Requests/s.
    pub amount: f64,
}

/// One DC as the optimum sees it.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// Where.
    pub at: LatLon,
    /// Requests/s it can take (0 when unusable).
    pub capacity: f64,
}

/// The optimum's demand-weighted mean distance in km, or `None` when the
/// demand does not fit the capacity (or the solver fails).
pub fn mean_km(demand: &[Demand], sites: &[Site]) -> Option<f64> {
    // Demand at the same place moves together: one row per place.
    let mut places: HashMap<(u64, u64), Demand> = HashMap::new();
    for d in demand.iter().filter(|d| d.amount > 0.0) {
        places
            .entry((d.at.lat.to_bits(), d.at.lon.to_bits()))
            .and_modify(|p| p.amount += d.amount)
            .or_insert(*d);
    }
    let total: f64 = places.values().map(|p| p.amount).sum();
    let open: Vec<(usize, &Site)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| s.capacity > 0.0)
        .collect();
    if total <= 0.0 || open.iter().map(|(_, s)| s.capacity).sum::<f64>() < total {
        return None;
    }
    let units: Vec<UnitVec> = open
        .iter()
        .map(|(_, s)| UnitVec::from_latlon(s.at))
        .collect();
    let mut vars = ProblemVariables::new();
    let mut objective = Expression::from(0.0);
    let mut per_site: Vec<Expression> = vec![Expression::from(0.0); open.len()];
    let mut rows = Vec::with_capacity(places.len());
    for p in places.values() {
        let here = UnitVec::from_latlon(p.at);
        let mut row = Expression::from(0.0);
        for (k, u) in units.iter().enumerate() {
            // In shares of the place's demand: a well-scaled problem.
            let x = vars.add(variable().min(0.0).max(1.0));
            objective += x * (p.amount * here.distance_km(u));
            per_site[k] += x * p.amount;
            row += x;
        }
        rows.push(row);
    }
    let mut model = vars.minimise(objective.clone()).using(good_lp::microlp);
    for row in rows {
        model = model.with(constraint!(row == 1.0));
    }
    for (k, e) in per_site.into_iter().enumerate() {
        model = model.with(constraint!(e <= open[k].1.capacity));
    }
    let solution = model.solve().ok()?;
    Some(solution.eval(&objective) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> LatLon {
        LatLon { lat, lon }
    }

    /// `amount` requests/s on the equator at `lon`.
    fn demand(lon: f64, amount: f64) -> Demand {
        Demand {
            at: at(0.0, lon),
            amount,
        }
    }

    /// A site on the equator at `lon`.
    fn site(lon: f64, capacity: f64) -> Site {
        Site {
            at: at(0.0, lon),
            capacity,
        }
    }

    /// Two sites on the equator, 10° apart (≈1112 km). All demand sits on
    /// the first; with room for 70 % there, 30 % must travel the gap.
    #[test]
    fn overflow_travels_exactly_as_far_as_it_must() {
        let gap =
            UnitVec::from_latlon(at(0.0, 0.0)).distance_km(&UnitVec::from_latlon(at(0.0, 10.0)));
        let demand = [demand(0.0, 100.0)];
        let sites = [site(0.0, 70.0), site(10.0, 100.0)];
        let km = mean_km(&demand, &sites).expect("feasible");
        assert!((km - 0.3 * gap).abs() < 1e-6 * gap, "{km} vs {}", 0.3 * gap);
        // With room for everything at home, nobody travels.
        let roomy = [site(0.0, 100.0), sites[1]];
        assert!(mean_km(&demand, &roomy).expect("feasible") < 1e-9);
    }

    #[test]
    fn demand_beyond_capacity_has_no_optimum() {
        let demand = [demand(0.0, 100.0)];
        let sites = [site(0.0, 60.0), site(10.0, 0.0)];
        assert_eq!(mean_km(&demand, &sites), None);
    }
}
