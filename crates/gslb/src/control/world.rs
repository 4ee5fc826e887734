//! The [`World`]: one immutable snapshot of everything the query path reads,
//! zones plus every DC's health (probe and feed), drain, utilisation,
//! effective capacity and price, and each zone's temperature. Background
//! tasks build a new one and swap it in; a query loads it once and never
//! waits for a writer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::load::{FeedHealth, LoadSource};
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
    /// Effective capacity: the fresh feed's `capacity`, else the declared.
    pub capacity: f64,
    /// What the fresh feed says of the DC's health (`None`: no feed, stale,
    /// or it did not say).
    pub feed_health: Option<FeedHealth>,
    /// The fresh feed's `reason`.
    pub feed_reason: Option<String>,
    /// Price μ ≥ 0.
    pub mu: f64,
    /// What the price did at the last step.
    pub phase: PricePhase,
    pub counters: Arc<DcCounters>,
}

impl DcView {
    /// A DC nobody has looked at yet: unknown health (treated as up), no
    /// drain, static load at its declared capacity, no feed, no price.
    pub fn cold(fallback_utilisation: f64, capacity: f64) -> Self {
        DcView {
            health: Health::Unknown,
            drained: false,
            utilisation: fallback_utilisation,
            load_source: LoadSource::Static,
            capacity,
            feed_health: None,
            feed_reason: None,
            mu: 0.0,
            phase: PricePhase::Free,
            counters: Arc::default(),
        }
    }

    /// Eligible for new answers.
    pub fn usable(&self) -> bool {
        usable(self.health, self.drained, self.feed_health)
    }

    /// Degraded DCs shorten the TTL of the names that can point at them, so
    /// clients move quickly once the situation changes: unusable, priced,
    /// or degraded by its own feed's word.
    pub fn degraded(&self) -> bool {
        !self.usable() || self.mu > 0.0 || self.feed_health == Some(FeedHealth::Degraded)
    }

    /// Down by its feed's word, whatever the probe says (status and
    /// explain show the feed's reason).
    pub fn down_by_feed(&self) -> bool {
        self.feed_health == Some(FeedHealth::Down)
    }
}

/// The one rule of eligibility, for the snapshot and the price step alike:
/// the probe is not down, no operator drained it, and its feed does not
/// say it is down.
pub fn usable(health: Health, drained: bool, feed: Option<FeedHealth>) -> bool {
    health.is_usable() && !drained && feed != Some(FeedHealth::Down)
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

/// One DC's reading as [`temperature`] weighs it.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub utilisation: f64,
    pub source: LoadSource,
    /// Effective capacity (see [`DcView::capacity`]).
    pub capacity: f64,
}

/// The zone's global utilisation Σ load / Σ capacity and its temperature,
/// from each DC's reading (aligned with `Zone::datacenters`), weighted by
/// its effective capacity. `auto` T rises with the share of capacity whose
/// feed has gone stale. The price step and the published view both ask
/// here, so the T a step prices with is the T queries are answered with.
pub fn temperature(zone: &Zone, readings: impl Iterator<Item = Reading>) -> (f64, f64) {
    let (mut load, mut blind, mut cap) = (0.0, 0.0, 0.0);
    for r in readings.take(zone.datacenters.len()) {
        load += r.utilisation * r.capacity;
        cap += r.capacity;
        if r.source == LoadSource::Stale {
            blind += r.capacity;
        }
    }
    let share = |x: f64| if cap > 0.0 { x / cap } else { 0.0 };
    let global = share(load);
    (global, zone.steering.temperature.at(share(blind), global))
}

impl ZoneView {
    pub fn new(zone: &Zone, dcs: Vec<DcView>, price: ZoneOutcome) -> Self {
        let (global_utilisation, temperature) = temperature(zone, dcs.iter().map(DcView::reading));
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
                    .map(|d| DcView::cold(d.load.as_ref().map_or(0.0, |l| l.fallback), d.capacity))
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
    /// Drained first, then down by the probe or by the feed.
    pub fn status(&self) -> DcStatus {
        if self.drained {
            DcStatus::Drained
        } else if self.down_by_feed() {
            DcStatus::Down
        } else {
            match self.health {
                Health::Up => DcStatus::Up,
                // No probe has spoken, but the DC's own feed says it
                // serves (its data plane has healthy backends).
                Health::Unknown if self.feed_health.is_some() => DcStatus::Up,
                Health::Unknown => DcStatus::Unknown,
                Health::Down => DcStatus::Down,
            }
        }
    }

    /// Its reading, as [`temperature`] weighs it.
    pub fn reading(&self) -> Reading {
        Reading {
            utilisation: self.utilisation,
            source: self.load_source,
            capacity: self.capacity,
        }
    }
}
