//! The price loop: every zone's load interval, the zone's DCs' smoothed
//! utilisations go through one step of the controller
//! ([`step_prices`](crate::steer::step_prices)), and the snapshot is
//! republished. Given the same readings in the same intervals, every DNS
//! node computes the same prices: the step is a pure function of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::world::{temperature, Reading};
use super::{Control, Inner, Key};
use crate::load::LoadSource;
use crate::steer::{admit, step_prices, DcInput, DemandMap, LatLon, PriceState, UnitVec};
use crate::zone::Zone;
use boltz_core::clock::unix_ms;

impl Control {
    /// One step of the price loop for every zone whose load interval has
    /// elapsed. Called from a ticker; `now` is passed for tests and for the
    /// simulator. Returns when the next zone is due.
    pub fn tick(&self, now: Instant) -> Instant {
        let mut inner = self.lock();
        let zones = inner.zones.clone();
        let mut changed = false;
        let mut next = now + Duration::from_secs(1);
        for zone in &zones.zones {
            let zname = zone.origin_str();
            let interval = zone.steering.load_interval;
            // A quarter of slack: the ticker wakes on wall-clock boundaries,
            // and a wake-up a little early must not skip a whole interval.
            match inner.last_price_update.get(&zname) {
                Some(t) if now.duration_since(*t) < interval - interval / 4 => {
                    next = next.min(*t + interval);
                    continue;
                }
                _ => next = next.min(now + interval),
            }
            inner.last_price_update.insert(zname.clone(), now);
            settle(&mut inner, zone, now);
            let ZoneState {
                keys,
                inputs,
                mut states,
                t,
            } = zone_state(&inner, zone, now);
            let before: Vec<f64> = states.iter().map(|s| s.mu).collect();
            let map = demand_map(&inner, zone, now);
            let memory = inner.memories.entry(zname.clone()).or_default();
            let outcome = step_prices(
                &mut states,
                memory,
                &inputs,
                &pair_energies(zone),
                map.as_ref(),
                t,
                &zone.steering.price,
            );
            if inner.outcomes.get(&zname).map(|o| o.infeasible) != Some(outcome.infeasible)
                && outcome.infeasible
            {
                info!(zone = %zname, global = outcome.global_utilisation, target = outcome.target, "demand exceeds the target utilisation of the usable capacity: filling every DC evenly");
            }
            inner.outcomes.insert(zname.clone(), outcome);
            for ((key, state), (dc, mu0)) in keys
                .iter()
                .zip(states)
                .zip(zone.datacenters.iter().zip(before))
            {
                if (state.mu > 0.0) != (mu0 > 0.0) {
                    info!(zone = %zname, dc = %dc.name, mu = state.mu, phase = ?state.phase, "price {}", if state.mu > 0.0 { "raised" } else { "back to zero" });
                }
                if let Some(st) = inner.dcs.get_mut(key) {
                    st.price = state;
                    st.fresh = false;
                }
            }
            changed = true;
        }
        if changed {
            self.publish(&mut inner);
        }
        next
    }

    /// Prices every DC that just became usable out of every cell, before
    /// any query sees it: called by whatever made it usable (undrain, a
    /// health probe's rise). The price step then ramps it in.
    pub(super) fn admit_returning(&self, inner: &mut Inner) {
        let zones = inner.zones.clone();
        let now = Instant::now();
        for zone in &zones.zones {
            let ZoneState {
                keys,
                inputs,
                mut states,
                t,
            } = zone_state(inner, zone, now);
            admit(
                &mut states,
                &inputs,
                &pair_energies(zone),
                t,
                &zone.steering.price,
            );
            for (key, state) in keys.iter().zip(states) {
                if let Some(st) = inner.dcs.get_mut(key) {
                    st.price = state;
                }
            }
        }
    }

    /// Runs the price ticker forever. It sleeps until the next zone is due
    /// (at most a second, so zones added by a reload start promptly) rather
    /// than polling: every wake-up can preempt a DNS worker on its core.
    /// Wake-ups fall on wall-clock multiples of the shortest load interval
    /// (Unix time), so DNS nodes whose clocks agree step their prices at the
    /// same instants, on the same readings.
    pub async fn run_ticker(self: Arc<Self>) {
        loop {
            let next = self.tick(Instant::now());
            let next = self.on_boundary(next);
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        }
    }

    /// The first wall-clock multiple of the shortest load interval at or
    /// after `due`.
    fn on_boundary(&self, due: Instant) -> Instant {
        let step = self
            .world()
            .zones
            .zones
            .iter()
            .map(|z| z.steering.load_interval)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .as_millis()
            .max(1) as u64;
        let now = Instant::now();
        let Some(unix) = boltz_core::clock::unix_ms() else {
            return due;
        };
        let mut at = now + Duration::from_millis(step - unix % step);
        while at + Duration::from_millis(step) <= due {
            at += Duration::from_millis(step);
        }
        at
    }
}

/// Folds into each of the zone's DCs the held feed samples measured long
/// enough before this step's wall-clock boundary (the multiple of the load
/// interval nearest the wall clock now) that every node has them: nodes
/// fed the same reports step on the same averages.
fn settle(inner: &mut Inner, zone: &Zone, now: Instant) {
    let step = zone.steering.load_interval.as_millis().max(1) as u64;
    let Some(wall) = unix_ms() else { return };
    let boundary = (wall + step / 2) / step * step;
    let zname = zone.origin_str();
    for dc in &zone.datacenters {
        if let Some(st) = inner.dcs.get_mut(&(zname.clone(), dc.name.clone())) {
            if st.load.settle(boundary, now) {
                st.fresh = true;
            }
        }
    }
}

/// What a price step or an admission needs of one zone.
struct ZoneState {
    keys: Vec<Key>,
    inputs: Vec<DcInput>,
    states: Vec<PriceState>,
    t: f64,
}

/// The zone's DCs as the controller sees them now, and its temperature.
fn zone_state(inner: &Inner, zone: &Zone, now: Instant) -> ZoneState {
    let zname = zone.origin_str();
    let keys: Vec<Key> = zone
        .datacenters
        .iter()
        .map(|dc| (zname.clone(), dc.name.clone()))
        .collect();
    let mut inputs = Vec::with_capacity(keys.len());
    let mut states = Vec::with_capacity(keys.len());
    let mut readings = Vec::with_capacity(keys.len());
    for (dc, key) in zone.datacenters.iter().zip(&keys) {
        let st = inner.dcs.get(key);
        let reading = st.map(|s| s.load.current(now));
        // The fill-evenly target and T weigh each DC by its effective
        // capacity: the fresh feed's, else the declared.
        let capacity = st.map_or(dc.capacity, |s| s.capacity(now, dc.capacity));
        readings.push(Reading {
            utilisation: reading.map_or(0.0, |r| r.utilisation),
            source: reading.map_or(LoadSource::Static, |r| r.source),
            capacity,
        });
        inputs.push(DcInput {
            usable: st.is_some_and(|s| s.usable(now)),
            capacity,
            utilisation: reading.map_or(0.0, |r| r.utilisation),
            // An operator's override and a DC's declared static load are
            // standing readings: new at every step, as a feed that keeps
            // reporting them would be (so a returning DC without a feed
            // still ramps back in). A stale feed's fallback is not.
            fresh: st.is_some_and(|s| s.fresh)
                || reading
                    .is_some_and(|r| matches!(r.source, LoadSource::Override | LoadSource::Static)),
        });
        states.push(st.map(|s| s.price.clone()).unwrap_or_default());
    }
    let (_, t) = temperature(zone, readings.into_iter());
    ZoneState {
        keys,
        inputs,
        states,
        t,
    }
}

/// Where the zone's demand comes from: the union of its DCs' fresh feeds'
/// demand maps, each cell with its distance energy to every DC of the zone
/// (`None` when no feed reports one: the controller then gropes by Newton
/// steps instead).
fn demand_map(inner: &Inner, zone: &Zone, now: Instant) -> Option<DemandMap> {
    let zname = zone.origin_str();
    let scale = zone.steering.distance_scale_km;
    let mut map = DemandMap {
        ln_weight: zone.datacenters.iter().map(|d| d.ln_weight).collect(),
        ..DemandMap::default()
    };
    for dc in &zone.datacenters {
        let Some(facts) = inner
            .dcs
            .get(&(zname.clone(), dc.name.clone()))
            .and_then(|st| st.load.facts(now))
        else {
            continue;
        };
        for &(lat, lon, rate) in facts.demand.iter() {
            let at = UnitVec::from_latlon(LatLon { lat, lon });
            map.rate.push(rate);
            map.energy.extend(
                zone.datacenters
                    .iter()
                    .map(|d| at.distance_km(&d.unit) / scale),
            );
        }
    }
    (!map.rate.is_empty()).then_some(map)
}

/// Distance energy between every two DCs of the zone, row-major: what the
/// controller needs to price a returning DC out of every cell.
fn pair_energies(zone: &Zone) -> Vec<f64> {
    let scale = zone.steering.distance_scale_km;
    let dcs = &zone.datacenters;
    dcs.iter()
        .flat_map(|a| dcs.iter().map(move |b| a.unit.distance_km(&b.unit) / scale))
        .collect()
}
