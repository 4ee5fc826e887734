//! One policy through one scenario: every load interval, the resolvers
//! whose cached answer expired ask the server's own decision code, the
//! demand behind every client lands on the DC it holds, each DC's
//! utilisation is fed back exactly as `PUT /v1/datacenters/{dc}/load`
//! does, and the server's own price tick runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boltz_gslb::{decide, Control, Family, FeedReport};
use boltz_steer::{LatLon, UnitVec};

use crate::agents::Agents;
use crate::clients::Client;
use crate::optimum;
use crate::policy::Policy;
use crate::scenario::{EventKind, Scenario};

/// One DC's demand by client location (the bits of its latitude and
/// longitude): latitude, longitude, requests/s.
type CellDemand = BTreeMap<(u64, u64), (f64, f64, f64)>;

/// One DC in one interval.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DcSample {
    /// Requests/s it received.
    pub demand: f64,
    /// Its real capacity this interval.
    pub capacity: f64,
    /// Its price μ after this interval's tick.
    pub mu: f64,
    /// Healthy and not drained.
    pub usable: bool,
}

impl DcSample {
    /// Demand over real capacity.
    pub fn utilisation(&self) -> f64 {
        if self.capacity > 0.0 {
            self.demand / self.capacity
        } else {
            0.0
        }
    }
}

/// One interval of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Interval {
    /// Its number.
    pub n: u32,
    /// Per DC, in the zone's order.
    pub dcs: Vec<DcSample>,
    /// Total demand.
    pub demand: f64,
    /// Demand-weighted mean distance from client to its DC.
    pub mean_km: f64,
    /// Demand above some DC's capacity.
    pub excess: f64,
    /// Share of clients whose DC changed since the last interval.
    pub moved: f64,
    /// Demand whose DC changed since the last interval.
    pub moved_demand: f64,
    /// The zone's temperature.
    pub temperature: f64,
    /// Total demand made the target infeasible (filled evenly).
    pub infeasible: bool,
    /// The capacity-respecting optimum's mean distance for this interval's
    /// world (computed at the last interval before each event and at the end).
    pub optimum_km: Option<f64>,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The policy's name.
    pub policy: String,
    /// Every interval.
    pub series: Vec<Interval>,
    /// Each client's DC at the end (for the map).
    pub last_dc: Vec<Option<usize>>,
    /// The utilisation its prices hold DCs at (`None`: no prices, as for
    /// `nearest` and `fixed-t0.1`).
    pub target_utilisation: Option<f64>,
}

/// The world a run needs besides its policy's zone.
pub struct Setup<'a> {
    /// The clients (the run changes a copy).
    pub clients: &'a [Client],
    /// Total demand in requests/s, spread over the clients by weight.
    pub demand: f64,
    /// The script.
    pub scenario: &'a Scenario,
}

/// How a resolver whose cache expired gets its DC.
enum Assign {
    /// The server's own decision on the policy's zone (prices, T).
    Decide,
    /// The decentralised agent model (no controller; the zone gives only
    /// its DCs, their health and drain).
    Agents(Box<Agents>),
}

/// Runs one policy (its zone set) through the scenario. `progress` is
/// called after every interval.
pub fn run(
    policy: Policy,
    control: &Arc<Control>,
    setup: &Setup<'_>,
    with_optimum: bool,
    mut progress: impl FnMut(u32),
) -> Run {
    let world = control.world_full();
    let zone = &world.zones.zones[0];
    let st = zone
        .any_steered()
        .expect("the simulated zone has a steered name");
    let origin = zone.origin_str();
    let names: Vec<String> = zone.datacenters.iter().map(|d| d.name.clone()).collect();
    let units: Vec<UnitVec> = zone.datacenters.iter().map(|d| d.unit).collect();
    let declared: Vec<f64> = zone.datacenters.iter().map(|d| d.capacity).collect();
    let interval = zone.steering.load_interval;
    let sc = setup.scenario;

    let mut clients = setup.clients.to_vec();
    let weight_sum: f64 = clients
        .iter()
        .map(|c| c.weight)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let per_weight = setup.demand / weight_sum;
    let mut crowd = vec![1.0; clients.len()];
    // Where each client is on the sphere: distances are taken every
    // interval, the trigonometry once (again only for a client that moves).
    let mut at: Vec<UnitVec> = clients
        .iter()
        .map(|c| UnitVec::from_latlon(c.location))
        .collect();
    let mut capacity = declared.clone();
    let mut held: Vec<Option<usize>> = vec![None; clients.len()];
    let mut series = Vec::with_capacity(sc.intervals as usize);
    let base = Instant::now();
    let mut answers: HashMap<(u64, u64), Option<usize>> = HashMap::new();
    let mut assign = match policy {
        Policy::Agents => {
            let at: Vec<LatLon> = clients.iter().map(|c| c.location).collect();
            Assign::Agents(Box::new(Agents::new(&units, &at)))
        }
        _ => Assign::Decide,
    };
    let steered = matches!(assign, Assign::Decide);
    let map_demand = policy.maps_demand();
    // Each client's demand in the last interval (what the agents know).
    let mut last_q = vec![0.0; clients.len()];

    for n in 0..sc.intervals {
        for e in sc.events.iter().filter(|e| e.at == n) {
            apply(
                control,
                &origin,
                &names,
                &declared,
                &mut capacity,
                &mut clients,
                &mut crowd,
                &e.kind,
            );
        }
        for e in sc.events.iter().filter(|e| e.at == n) {
            if let EventKind::Move { client, .. } = e.kind {
                if let Some(c) = clients.get(client) {
                    at[client] = UnitVec::from_latlon(c.location);
                    if let Assign::Agents(a) = &mut assign {
                        a.relocate(client, &units, c.location);
                    }
                }
            }
        }
        let w = control.world_full();
        let (zone, view) = (&w.zones.zones[0], &w.views[0]);
        if let (Assign::Agents(a), Some(last)) = (&mut assign, series.last()) {
            let last: &Interval = last;
            let util: Vec<f64> = last.dcs.iter().map(DcSample::utilisation).collect();
            let cap: Vec<f64> = last.dcs.iter().map(|d| d.capacity).collect();
            let usable: Vec<bool> = view.dcs.iter().map(|d| d.usable()).collect();
            a.step(&util, &cap, &usable, &last_q);
        }
        let diurnal = sc.diurnal.map_or(1.0, |d| {
            1.0 + d.amplitude
                * (2.0 * std::f64::consts::PI * f64::from(n) / f64::from(d.period.max(1))).sin()
        });
        // Requests/s behind client `k` this interval.
        let demand_of = |k: usize| clients[k].weight * per_weight * crowd[k] * diurnal;
        answers.clear();
        let mut demand = vec![0.0; names.len()];
        // Per DC, its demand by client location (a site's map of where its
        // requests come from).
        let mut cells: Vec<CellDemand> = vec![BTreeMap::new(); names.len()];
        let (mut total, mut km, mut moved, mut moved_demand) = (0.0, 0.0, 0usize, 0.0);
        for (k, c) in clients.iter().enumerate() {
            let due = n == 0 || (n + c.phase) % sc.cache_intervals == 0;
            let before = held[k];
            if let (true, Assign::Agents(a)) = (due, &assign) {
                held[k] = Some(a.assigned[k]);
            } else if due {
                held[k] = *answers
                    .entry((
                        c.cell,
                        c.location.lat.to_bits() ^ c.location.lon.to_bits().rotate_left(17),
                    ))
                    .or_insert_with(|| {
                        let d = decide(zone, view, st, Family::V4, Some(c.location), c.cell, None);
                        let first = d.chosen(zone, st).next();
                        first
                    });
            }
            let q = demand_of(k);
            last_q[k] = q;
            total += q;
            if let Some(i) = held[k] {
                let spot = (c.location.lat.to_bits(), c.location.lon.to_bits());
                cells[i]
                    .entry(spot)
                    .or_insert((c.location.lat, c.location.lon, 0.0))
                    .2 += q;
                demand[i] += q;
                km += q * at[k].distance_km(&units[i]);
            }
            if n > 0 && held[k] != before {
                moved += 1;
                moved_demand += q;
            }
        }
        let now = base + interval * n + Duration::from_nanos(1);
        for (i, name) in names.iter().enumerate() {
            let u = if capacity[i] > 0.0 {
                demand[i] / capacity[i]
            } else {
                0.0
            };
            // What the DC's feed reports, as a site's node would: its load
            // and, where the policy maps demand, where it comes from.
            let report = FeedReport {
                seq: Some(u64::from(n)),
                demand: if map_demand {
                    std::mem::take(&mut cells[i]).into_values().collect()
                } else {
                    Vec::new()
                },
                ..FeedReport::new(u)
            };
            let _ = control.apply_report_at(name, Some(&origin), report, now);
        }
        control.tick(now);
        let after = control.world_full();
        let v = &after.views[0];
        let dcs: Vec<DcSample> = (0..names.len())
            .map(|i| DcSample {
                demand: demand[i],
                capacity: capacity[i],
                mu: if steered { v.dcs[i].mu } else { 0.0 },
                usable: v.dcs[i].usable(),
            })
            .collect();
        let optimum_km = (with_optimum && ends_window(sc, n)).then(|| {
            let demand: Vec<optimum::Demand> = clients
                .iter()
                .enumerate()
                .map(|(k, c)| optimum::Demand {
                    at: c.location,
                    amount: demand_of(k),
                })
                .collect();
            let sites: Vec<optimum::Site> = zone
                .datacenters
                .iter()
                .zip(&dcs)
                .map(|(d, s)| optimum::Site {
                    at: d.location,
                    capacity: if s.usable { s.capacity } else { 0.0 },
                })
                .collect();
            optimum::mean_km(&demand, &sites)
        });
        let optimum_km = optimum_km.flatten();
        let excess = dcs.iter().map(|d| (d.demand - d.capacity).max(0.0)).sum();
        series.push(Interval {
            n,
            dcs,
            demand: total,
            mean_km: if total > 0.0 { km / total } else { 0.0 },
            excess,
            moved: moved as f64 / clients.len().max(1) as f64,
            moved_demand,
            temperature: if steered { view.temperature } else { 0.0 },
            infeasible: steered && v.price.infeasible,
            optimum_km,
        });
        progress(n);
    }
    Run {
        policy: policy.name().to_string(),
        series,
        last_dc: held,
        // Only a policy that prices has a target (the agents hold theirs
        // in their own thresholds).
        target_utilisation: (steered && zone.steering.price.step > 0.0)
            .then_some(zone.steering.price.target_utilisation),
    }
}

/// Whether interval `n` is the last before an event or the end: where the
/// optimum of a window's world is taken.
pub fn ends_window(sc: &Scenario, n: u32) -> bool {
    n + 1 == sc.intervals || sc.events.iter().any(|e| e.at == n + 1)
}

/// Applies one event to the world (and, for drain and health, to the
/// control plane through the calls the API and the probes make).
#[allow(clippy::too_many_arguments)]
fn apply(
    control: &Control,
    origin: &str,
    names: &[String],
    declared: &[f64],
    capacity: &mut [f64],
    clients: &mut [Client],
    crowd: &mut [f64],
    kind: &EventKind,
) {
    let index = |dc: &str| names.iter().position(|n| n == dc);
    match kind {
        EventKind::Capacity { dc, factor } => {
            if let Some(i) = index(dc) {
                capacity[i] = declared[i] * factor;
            }
        }
        EventKind::Drain { dc } => drop(control.set_drain(dc, Some(origin), true)),
        EventKind::Undrain { dc } => drop(control.set_drain(dc, Some(origin), false)),
        EventKind::Down { dc } => drop(control.set_health(dc, Some(origin), false)),
        EventKind::Up { dc } => drop(control.set_health(dc, Some(origin), true)),
        EventKind::Crowd {
            near,
            radius_km,
            factor,
        } => {
            let centre = UnitVec::from_latlon(LatLon {
                lat: near[0],
                lon: near[1],
            });
            for (c, f) in clients.iter().zip(crowd.iter_mut()) {
                if UnitVec::from_latlon(c.location).distance_km(&centre) <= *radius_km {
                    *f = *factor;
                }
            }
        }
        EventKind::Move { client, to } => {
            if let Some(c) = clients.get_mut(*client) {
                c.location = LatLon {
                    lat: to[0],
                    lon: to[1],
                };
            }
        }
    }
}

/// The DC names of the run's zone (for tables and plots).
pub fn dc_names(control: &Control) -> Vec<String> {
    control.world().zones.zones[0]
        .datacenters
        .iter()
        .map(|d| d.name.clone())
        .collect()
}
