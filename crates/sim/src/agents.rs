//! The decentralised agent model, the idea boltz is compared against: no
//! coordinator and no prices, every DC an agent that decides once per load
//! interval from local information only (its own utilisation and its
//! neighbours', ordered by distance, as measured in the previous interval:
//! the same lag the price loop has). All DCs decide at once; a client moved
//! twice in one interval keeps the first move.
//!
//! - Every client starts at its nearest DC.
//! - A DC over capacity (`u > 1`, "full") delegates users: it hands its
//!   clients farthest from it to its nearest running DC that is not full
//!   (as it last knew it), enough demand to get back to [`DELEGATE_TO`].
//!   If its nearest DC is shut down, that one restarts and takes them.
//! - A running DC under the low-water mark [`LOW`] pulls users: from its
//!   nearest running neighbour that is busier than it, the neighbour's
//!   clients closest to the puller, up to the mark and at most half the
//!   gap between them.
//! - A DC under the idle mark [`IDLE`] shuts down and hands all its
//!   clients to its nearest running neighbour (the last running DC stays).
//!   A drained or failed DC does the same (it is out of the game until it
//!   comes back, then restarts the way a shut-down one does).
//!
//! The model only says which DC answers for a client; the run applies it
//! through the resolvers' caches exactly as it applies the server's
//! decision, so a reassignment lands when the client's cache expires.

use boltz_steer::{LatLon, UnitVec};

/// Utilisation at which a DC is full and delegates.
pub const FULL: f64 = 1.0;
/// A full DC delegates enough demand to come back to this utilisation.
pub const DELEGATE_TO: f64 = 0.95;
/// Under this utilisation a DC pulls users from a busier neighbour.
pub const LOW: f64 = 0.5;
/// Under this utilisation a DC shuts down.
pub const IDLE: f64 = 0.1;

/// The agents' state: who answers for each client, and which DCs run.
#[derive(Clone, Debug)]
pub struct Agents {
    /// DC to DC distances, km.
    dc_km: Vec<Vec<f64>>,
    /// Client to DC distances, km (client-major).
    client_km: Vec<Vec<f64>>,
    /// The DC each client is assigned to now (what its resolver gets when
    /// its cache expires).
    pub assigned: Vec<usize>,
    /// Whether each DC is running (not shut down, not out).
    pub running: Vec<bool>,
}

impl Agents {
    /// Every client at its nearest DC, every DC running.
    pub fn new(dcs: &[UnitVec], clients: &[LatLon]) -> Agents {
        let dc_km = dcs
            .iter()
            .map(|a| dcs.iter().map(|b| a.distance_km(b)).collect())
            .collect();
        let client_km: Vec<Vec<f64>> = clients
            .iter()
            .map(|c| {
                let u = UnitVec::from_latlon(*c);
                dcs.iter().map(|d| u.distance_km(d)).collect()
            })
            .collect();
        let assigned = client_km.iter().map(|d| nearest_of(d)).collect();
        Agents {
            dc_km,
            client_km,
            assigned,
            running: vec![true; dcs.len()],
        }
    }

    /// Moves a client (a moved client is re-placed at its nearest DC).
    pub fn relocate(&mut self, client: usize, dcs: &[UnitVec], to: LatLon) {
        let u = UnitVec::from_latlon(to);
        self.client_km[client] = dcs.iter().map(|d| u.distance_km(d)).collect();
    }

    /// One interval's decisions. `util` and `capacity` are each DC's
    /// utilisation and capacity in the previous interval, `usable` whether
    /// it is healthy and not drained now, `demand` each client's demand in
    /// the previous interval.
    pub fn step(&mut self, util: &[f64], capacity: &[f64], usable: &[bool], demand: &[f64]) {
        let n = util.len();
        let was_running = self.running.clone();
        let mut moved = vec![false; self.assigned.len()];
        // DCs out of service stop; the rest that were shut stay shut.
        for (r, &ok) in self.running.iter_mut().zip(usable) {
            *r &= ok;
        }
        if !self.running.iter().any(|&r| r) {
            if let Some(i) = (0..n).find(|&i| usable[i]) {
                self.running[i] = true;
            }
        }
        let mut hand = Vec::new();
        // Idle running DCs shut down (never the last one running).
        for i in 0..n {
            let others = (0..n).filter(|&j| j != i && self.running[j]).count();
            if self.running[i] && was_running[i] && util[i] < IDLE && others > 0 {
                self.running[i] = false;
            }
        }
        // Full DCs: restart their nearest if it is shut, else delegate.
        let mut delegations = Vec::new();
        for i in 0..n {
            if !(self.running[i] && util[i] > FULL) {
                continue;
            }
            let to = match self.nearest(i, |j| usable[j]) {
                Some(j) if !self.running[j] => {
                    self.running[j] = true;
                    Some(j)
                }
                _ => self.nearest(i, |j| self.running[j] && util[j] <= FULL),
            };
            if let Some(j) = to {
                delegations.push((i, j, (util[i] - DELEGATE_TO) * capacity[i]));
            }
        }
        // Every client of a DC that is not running goes to its nearest
        // running one.
        for i in 0..n {
            if self.running[i] {
                continue;
            }
            if let Some(j) = self.nearest(i, |j| self.running[j]) {
                hand.push((i, j));
            }
        }
        for (i, j) in hand {
            for (a, m) in self.assigned.iter_mut().zip(moved.iter_mut()) {
                if *a == i && !*m {
                    *a = j;
                    *m = true;
                }
            }
        }
        for (i, j, amount) in delegations {
            // Farthest from i first.
            self.transfer(i, j, amount, demand, &mut moved, |km| -km[i]);
        }
        // Under-used DCs pull from their nearest busier running neighbour.
        for i in 0..n {
            if !(self.running[i] && was_running[i] && util[i] < LOW && util[i] >= IDLE) {
                continue;
            }
            if let Some(j) = self.nearest(i, |j| self.running[j] && util[j] > util[i]) {
                let amount =
                    ((LOW - util[i]) * capacity[i]).min((util[j] - util[i]) / 2.0 * capacity[j]);
                // The neighbour's clients closest to i first.
                self.transfer(j, i, amount, demand, &mut moved, |km| km[i]);
            }
        }
    }

    /// The nearest other DC to `from` that `ok` accepts.
    fn nearest(&self, from: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let km = &self.dc_km[from];
        (0..km.len())
            .filter(|&j| j != from && ok(j))
            .min_by(|&a, &b| km[a].total_cmp(&km[b]))
    }

    /// Moves clients of `from` to `to`, in order of `key` (lowest first),
    /// until `amount` of demand has moved.
    fn transfer(
        &mut self,
        from: usize,
        to: usize,
        amount: f64,
        demand: &[f64],
        moved: &mut [bool],
        key: impl Fn(&[f64]) -> f64,
    ) {
        if amount <= 0.0 {
            return;
        }
        let mut ks: Vec<usize> = (0..self.assigned.len())
            .filter(|&k| self.assigned[k] == from && !moved[k])
            .collect();
        ks.sort_by(|&a, &b| key(&self.client_km[a]).total_cmp(&key(&self.client_km[b])));
        let mut left = amount;
        for k in ks {
            // (A hair of rounding must not move one client more.)
            if left <= amount * 1e-9 {
                break;
            }
            self.assigned[k] = to;
            moved[k] = true;
            left -= demand[k];
        }
    }
}

/// The index of the smallest distance of `km` (0 if none).
fn nearest_of(km: &[f64]) -> usize {
    (0..km.len())
        .min_by(|&a, &b| km[a].total_cmp(&km[b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three DCs on the equator at 0°, 10° and 40° east; `per` clients
    /// next to each.
    fn world(per: usize) -> (Vec<UnitVec>, Vec<LatLon>) {
        let at = [0.0, 10.0, 40.0];
        let dcs = at
            .iter()
            .map(|&lon| UnitVec::from_latlon(LatLon { lat: 0.0, lon }))
            .collect();
        let clients = at
            .iter()
            .flat_map(|&lon| {
                (0..per).map(move |k| LatLon {
                    lat: 0.0,
                    lon: lon + k as f64 * 0.01,
                })
            })
            .collect();
        (dcs, clients)
    }

    fn count(a: &Agents, dc: usize) -> usize {
        a.assigned.iter().filter(|&&d| d == dc).count()
    }

    #[test]
    fn starts_nearest_and_delegates_when_full() {
        let (dcs, clients) = world(100);
        let mut a = Agents::new(&dcs, &clients);
        assert_eq!([count(&a, 0), count(&a, 1), count(&a, 2)], [100, 100, 100]);
        // DC 0 at 150 % of a capacity of 100 (1 per client): it hands 55
        // of demand to its nearest not full, DC 1.
        a.step(&[1.5, 0.7, 0.7], &[100.0; 3], &[true; 3], &[1.0; 300]);
        assert_eq!([count(&a, 0), count(&a, 1), count(&a, 2)], [45, 155, 100]);
        // The ones it handed are its farthest (the highest longitudes).
        assert!(a.assigned[..45].iter().all(|&d| d == 0));
        // Full and its nearest also full: the next one not full.
        let mut b = Agents::new(&dcs, &clients);
        b.step(&[1.5, 1.2, 0.7], &[100.0; 3], &[true; 3], &[1.0; 300]);
        assert_eq!(count(&b, 2), 100 + 55 + 25);
    }

    #[test]
    fn pulls_when_under_used() {
        let (dcs, clients) = world(100);
        let mut a = Agents::new(&dcs, &clients);
        // DC 1 at 20 % pulls from its nearest busier neighbour, DC 0 (at
        // 90 %): up to 50 % (30) and within half the gap (35).
        a.step(&[0.9, 0.2, 0.6], &[100.0; 3], &[true; 3], &[1.0; 300]);
        assert_eq!([count(&a, 0), count(&a, 1), count(&a, 2)], [70, 130, 100]);
        // Those it pulled are DC 0's clients closest to it.
        assert!(a.assigned[70..100].iter().all(|&d| d == 1));
    }

    /// The standard world, briefly: agents beside balance. Only the shape
    /// of the report is asserted; the figures are printed.
    #[test]
    fn runs_in_the_standard_world_beside_balance() {
        use crate::{Options, Policy, Scenario};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let opts = Options {
            zone: root.join("simulate/world.toml"),
            geoip: root.join("simulate/world.mmdb"),
            clients: 3000,
            networks: None,
            demand: 20000.0,
            seed: 1,
            policies: vec![Policy::Agents, Policy::Zone],
        };
        let mut sc = Scenario::load("capacity-loss").unwrap();
        sc.intervals = 40;
        sc.events.iter_mut().for_each(|e| e.at = 20);
        let clients = crate::clients(&opts).unwrap();
        let r = crate::simulate(&opts, &sc, &clients, |_, _| {}).unwrap();
        print!("{}", crate::table(&r.summary));
        assert_eq!(r.runs[0].policy, "agents");
        assert_eq!(r.runs[0].series.len(), 40);
        let rows = r.summary.iter().filter(|w| w.policy == "agents").count();
        assert_eq!(rows, 2, "one row per window");
        let first = &r.runs[0].series[0];
        assert!(
            first.dcs.iter().all(|d| d.mu == 0.0),
            "agents have no prices"
        );
    }

    #[test]
    fn shuts_an_idle_dc_down_and_restarts_it_when_needed() {
        let (dcs, clients) = world(100);
        let mut a = Agents::new(&dcs, &clients);
        a.step(&[0.7, 0.05, 0.7], &[100.0; 3], &[true; 3], &[1.0; 300]);
        assert!(!a.running[1]);
        assert_eq!([count(&a, 0), count(&a, 1), count(&a, 2)], [200, 0, 100]);
        // DC 0 full: its nearest, DC 1, restarts and takes the excess.
        a.step(
            &[1.4, 0.0, 0.7],
            &[150.0, 100.0, 100.0],
            &[true; 3],
            &[1.0; 300],
        );
        assert!(a.running[1]);
        assert_eq!(count(&a, 1), 68);
        // A failed DC hands everything over and stops.
        a.step(
            &[0.8, 0.7, 0.7],
            &[100.0; 3],
            &[true, false, true],
            &[1.0; 300],
        );
        assert!(!a.running[1] && count(&a, 1) == 0);
    }
}
