//! The [`World`]: one immutable snapshot of everything the query path reads,
//! zones plus every DC's health, drain, utilisation and price, and each
//! zone's temperature. Background tasks build a new one and swap it in; a
//! query loads it once and never waits for a writer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::load::LoadSource;
use crate::steer::{PricePhase, ZoneOutcome};
use crate::zone::{Zone, ZoneSet};
use boltz_core::counter::ShardedCounter;
use boltz_health::Health;

/// Counters of one DC that live across snapshots.
#[derive(Debug, Default)]
pub struct DcCounters {
    /// Queries whose first answer was this DC.
    pub answers: ShardedCounter,
}

impl DcCounters {
    #[inline]
    pub fn count_answer(&self) {
        self.answers.add(1);
    }
}

/// One DC's dynamic state as the policy sees it.
#[derive(Clone, Debug)]
pub struct DcView {
    pub health: Health,
    pub drained: bool,
    /// Smoothed utilisation (or override, or fallback).
    pub utilisation: f64,
    pub load_source: LoadSource,
    /// Price μ ≥ 0.
    pub mu: f64,
    /// What the price did at the last step.
    pub phase: PricePhase,
    pub counters: Arc<DcCounters>,
}

impl DcView {
    /// A DC nobody has looked at yet: unknown health (treated as up), no
    /// drain, static load, no price.
    pub fn cold(fallback_utilisation: f64) -> Self {
        DcView {
            health: Health::Unknown,
            drained: false,
            utilisation: fallback_utilisation,
            load_source: LoadSource::Static,
            mu: 0.0,
            phase: PricePhase::Free,
            counters: Arc::default(),
        }
    }

    /// Eligible for new answers.
    pub fn usable(&self) -> bool {
        self.health.is_usable() && !self.drained
    }

    /// Degraded DCs shorten the TTL of the names that can point at them, so
    /// clients move quickly once the situation changes.
    pub fn degraded(&self) -> bool {
        !self.usable() || self.mu > 0.0
    }
}

/// Dynamic state of one zone, aligned with `Zone::datacenters`.
#[derive(Clone, Debug)]
pub struct ZoneView {
    pub dcs: Vec<DcView>,
    /// Σ utilisation·capacity / Σ capacity over the zone's DCs.
    pub global_utilisation: f64,
    pub temperature: f64,
    /// The last price step's conclusion: the target DCs are held at, and
    /// whether demand made ρ* infeasible.
    pub price: ZoneOutcome,
}

/// The zone's global utilisation Σ load / Σ capacity and its temperature,
/// from each DC's utilisation and load source (aligned with
/// `Zone::datacenters`). `auto` T rises with the share of capacity whose
/// feed has gone stale. The price step and the published view both ask
/// here, so the T a step prices with is the T queries are answered with.
pub fn temperature(zone: &Zone, readings: impl Iterator<Item = (f64, LoadSource)>) -> (f64, f64) {
    let (mut load, mut blind, mut cap) = (0.0, 0.0, 0.0);
    for (dc, (utilisation, source)) in zone.datacenters.iter().zip(readings) {
        load += utilisation * dc.capacity;
        cap += dc.capacity;
        if source == LoadSource::Stale {
            blind += dc.capacity;
        }
    }
    let share = |x: f64| if cap > 0.0 { x / cap } else { 0.0 };
    let global = share(load);
    (global, zone.steering.temperature.at(share(blind), global))
}

impl ZoneView {
    pub fn new(zone: &Zone, dcs: Vec<DcView>, price: ZoneOutcome) -> Self {
        let (global_utilisation, temperature) =
            temperature(zone, dcs.iter().map(|v| (v.utilisation, v.load_source)));
        ZoneView {
            temperature,
            price,
            global_utilisation,
            dcs,
        }
    }
}

/// Everything a query needs, swapped atomically.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// The zones answered from (with their wire index).
    pub zones: Arc<ZoneSet>,
    /// Aligned with `zones.zones`.
    pub views: Vec<ZoneView>,
    /// Distinct for every snapshot ever published: caches of decisions key
    /// on it, so a new snapshot invalidates them all at once.
    pub generation: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh snapshot generation.
pub fn next_generation() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl World {
    /// A world with no runtime information (offline `explain`, start-up).
    pub fn cold(zones: Arc<ZoneSet>) -> Self {
        let views = zones
            .zones
            .iter()
            .map(|z| {
                let dcs = z
                    .datacenters
                    .iter()
                    .map(|d| DcView::cold(d.load.as_ref().map_or(0.0, |l| l.fallback)))
                    .collect();
                ZoneView::new(z, dcs, ZoneOutcome::default())
            })
            .collect();
        World {
            zones,
            views,
            generation: next_generation(),
        }
    }
}

/// Health as the API and explain show it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DcStatus {
    Up,
    Unknown,
    Down,
    Drained,
}

impl DcView {
    pub fn status(&self) -> DcStatus {
        if self.drained {
            DcStatus::Drained
        } else {
            match self.health {
                Health::Up => DcStatus::Up,
                Health::Unknown => DcStatus::Unknown,
                Health::Down => DcStatus::Down,
            }
        }
    }
}
