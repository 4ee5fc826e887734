//! Counters of the query path and their Prometheus text rendering. Counting
//! is a relaxed atomic add into a fixed table (rcode × qtype) in a per-thread
//! shard, so it costs the query path no lock, no allocation and no cache
//! line shared between cores; shards are summed when scraped. Gauges
//! (temperature, prices, health, capacity) are read from the current
//! [`World`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use boltz_core::counter::{shard, Padded, ShardedCounter, SHARDS};
use boltz_core::prometheus::{Exposition, Kind};
use boltz_health::HealthStatus;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::control::{DcView, World, ZoneView};
use crate::dns::rrl::Class;
use crate::load::FeedHealth;

const RCODES: [(&str, u16); 8] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("BADVERS", 16),
    ("OTHER", u16::MAX),
];

const QTYPES: [&str; 13] = [
    "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "SOA", "ANY", "PTR", "none", "other",
];

fn rcode_slot(r: ResponseCode) -> usize {
    let v = u16::from(r);
    RCODES
        .iter()
        .position(|(_, c)| *c == v)
        .unwrap_or(RCODES.len() - 1)
}

fn qtype_slot(t: Option<RecordType>) -> usize {
    let Some(t) = t else { return 11 };
    match t {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::CNAME => 2,
        RecordType::MX => 3,
        RecordType::TXT => 4,
        RecordType::SRV => 5,
        RecordType::CAA => 6,
        RecordType::NS => 7,
        RecordType::SOA => 8,
        RecordType::ANY => 9,
        RecordType::PTR => 10,
        _ => 12,
    }
}

type QueryTable = [[AtomicU64; QTYPES.len()]; RCODES.len()];

/// Query-path counters.
pub struct Metrics {
    queries: Box<[Padded<QueryTable>]>,
    dropped: ShardedCounter,
    truncated: ShardedCounter,
    tcp_refused: ShardedCounter,
    tcp_timeouts: ShardedCounter,
    /// Per response class (answer, NXDOMAIN, error, referral) and what
    /// the rate limiter did: dropped, slipped, logged.
    rrl: [[ShardedCounter; 3]; 4],
    /// Queries with a cookie: client cookie only, a valid server cookie,
    /// a server cookie not ours (or too old).
    cookies: [ShardedCounter; 3],
    reloads_ok: ShardedCounter,
    reloads_failed: ShardedCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            queries: (0..SHARDS)
                .map(|_| {
                    Padded(std::array::from_fn(|_| {
                        std::array::from_fn(|_| AtomicU64::new(0))
                    }))
                })
                .collect(),
            dropped: ShardedCounter::default(),
            truncated: ShardedCounter::default(),
            tcp_refused: ShardedCounter::default(),
            tcp_timeouts: ShardedCounter::default(),
            rrl: Default::default(),
            cookies: Default::default(),
            reloads_ok: ShardedCounter::default(),
            reloads_failed: ShardedCounter::default(),
        }
    }
}

impl Metrics {
    #[inline]
    /// Counts one answered query.
    pub fn count(&self, rcode: ResponseCode, qtype: Option<RecordType>) {
        self.queries[shard()].0[rcode_slot(rcode)][qtype_slot(qtype)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one packet dropped unanswered.
    pub fn count_dropped(&self) {
        self.dropped.add(1);
    }

    /// Counts one UDP response truncated for size.
    pub fn count_truncated(&self) {
        self.truncated.add(1);
    }

    /// Counts one TCP connection closed on accept: its address had too
    /// many.
    pub fn count_tcp_refused(&self) {
        self.tcp_refused.add(1);
    }

    /// Counts one TCP connection closed because its clock ran out (no
    /// whole query, or answers not read, within the idle time).
    pub fn count_tcp_timeout(&self) {
        self.tcp_timeouts.add(1);
    }

    /// Counts one query that carried a cookie: `presented` a server
    /// cookie, which was `valid` (ours, in its time) or not.
    pub fn count_cookie(&self, presented: bool, valid: bool) {
        let i = match (presented, valid) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        };
        self.cookies[i].add(1);
    }

    /// Counts one response the rate limiter acted on.
    pub fn count_rrl(&self, class: Class, what: RrlCount) {
        self.rrl[class as usize][what as usize].add(1);
    }

    fn queries_at(&self, r: usize, t: usize) -> u64 {
        self.queries
            .iter()
            .map(|s| s.0[r][t].load(Ordering::Relaxed))
            .sum()
    }

    /// Counts one zone reload, applied (`ok`) or rejected.
    pub fn count_reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.add(1);
    }

    /// Prometheus text exposition of the counters and of the gauges of
    /// `world` (`health` adds each DC's count of state changes); `more`
    /// adds families of its own (the site's).
    pub fn render(
        &self,
        world: &World,
        health: &HashMap<(String, String), HealthStatus>,
        more: impl FnOnce(&mut Exposition),
    ) -> String {
        let mut e = Exposition::new();
        {
            let mut f = e.family(
                "boltz_queries_total",
                Kind::Counter,
                "DNS queries answered, by response code and query type.",
            );
            for (ri, (rname, _)) in RCODES.iter().enumerate() {
                for (ti, tname) in QTYPES.iter().enumerate() {
                    let v = self.queries_at(ri, ti);
                    if v > 0 {
                        f.sample(&[("rcode", rname), ("qtype", tname)], v);
                    }
                }
            }
        }
        for (name, help, c) in [
            (
                "boltz_dropped_total",
                "Packets dropped unanswered (too short, or responses).",
                &self.dropped,
            ),
            (
                "boltz_truncated_total",
                "UDP responses truncated (TC) for size.",
                &self.truncated,
            ),
            (
                "boltz_tcp_refused_total",
                "TCP connections closed on accept: their client address had too many.",
                &self.tcp_refused,
            ),
            (
                "boltz_tcp_timeouts_total",
                "TCP connections closed for silence: no whole query, or answers left unread, within the idle time.",
                &self.tcp_timeouts,
            ),
            (
                "boltz_reloads_total",
                "Successful zone reloads.",
                &self.reloads_ok,
            ),
            (
                "boltz_reload_failures_total",
                "Rejected zone reloads (old zones kept).",
                &self.reloads_failed,
            ),
        ] {
            e.single(name, Kind::Counter, help, c.get());
        }
        {
            let mut f = e.family(
                "boltz_rrl_limited_total",
                Kind::Counter,
                "UDP responses over the rate limit, by response class and what was done: dropped, slipped (sent truncated), logged (log-only mode, sent).",
            );
            for (ci, class) in Class::ALL.iter().enumerate() {
                for (ai, action) in ["dropped", "slipped", "logged"].iter().enumerate() {
                    f.sample(
                        &[("class", class.name()), ("action", action)],
                        self.rrl[ci][ai].get(),
                    );
                }
            }
        }
        {
            let mut f = e.family(
                "boltz_cookie_queries_total",
                Kind::Counter,
                "Queries with a DNS cookie, by what they carried: a client cookie only (new), a valid server cookie, one not ours or too old (invalid).",
            );
            for (i, verdict) in ["new", "valid", "invalid"].iter().enumerate() {
                f.sample(&[("verdict", verdict)], self.cookies[i].get());
            }
        }
        render_world(&mut e, world, health);
        more(&mut e);
        e.finish()
    }
}

/// What the rate limiter did with a response it limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RrlCount {
    /// Not sent.
    Dropped,
    /// Sent truncated.
    Slipped,
    /// Sent (log-only mode).
    Logged,
}

/// A per-zone gauge: one sample per zone.
type ZoneGauge = fn(&ZoneView) -> f64;
/// A per-DC family: one sample per (zone, DC) that has a value.
type DcValue = fn(&DcView, u64) -> Option<f64>;

/// The gauges of the snapshot: per zone, then per (zone, DC), each family
/// written whole under its own header.
fn render_world(
    e: &mut Exposition,
    world: &World,
    health: &HashMap<(String, String), HealthStatus>,
) {
    let zones = || world.zones.zones.iter().zip(&world.views);
    let per_zone: [(&str, &str, ZoneGauge); 4] = [
        (
            "boltz_temperature",
            "Current Boltzmann temperature T of the zone.",
            |v| v.temperature,
        ),
        (
            "boltz_global_utilisation",
            "Sum of load over sum of capacity in the zone.",
            |v| v.global_utilisation,
        ),
        (
            "boltz_price_target_utilisation",
            "The utilisation the price controller holds DCs at: the zone's target, or the global utilisation when demand makes the target infeasible.",
            |v| v.price.target,
        ),
        (
            "boltz_price_target_infeasible",
            "1 while total demand exceeds the target share of usable capacity, so every DC is filled evenly.",
            |v| if v.price.infeasible { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, value) in per_zone {
        let mut f = e.family(name, Kind::Gauge, help);
        for (zone, view) in zones() {
            f.sample(&[("zone", &zone.origin_str())], value(view));
        }
    }
    let per_dc: [(&str, Kind, &str, DcValue); 8] = [
        (
            "boltz_dc_answers_total",
            Kind::Counter,
            "Queries whose first answer was this DC.",
            |v, _| Some(v.counters.answers.get() as f64),
        ),
        (
            "boltz_dc_up",
            Kind::Gauge,
            "1 if the DC is usable (up or unknown, not drained).",
            |v, _| Some(f64::from(u8::from(v.usable()))),
        ),
        (
            "boltz_dc_drained",
            Kind::Gauge,
            "1 if an operator drained the DC.",
            |v, _| Some(f64::from(u8::from(v.drained))),
        ),
        (
            "boltz_dc_utilisation",
            Kind::Gauge,
            "Smoothed utilisation of the DC.",
            |v, _| Some(v.utilisation),
        ),
        (
            "boltz_dc_price",
            Kind::Gauge,
            "Price mu of the DC (energy units).",
            |v, _| Some(v.mu),
        ),
        (
            "boltz_dc_capacity",
            Kind::Gauge,
            "Effective capacity of the DC in requests/s: its fresh feed's, else the declared.",
            |v, _| Some(v.capacity),
        ),
        (
            "boltz_dc_feed_health",
            Kind::Gauge,
            "What the DC's fresh feed says of its health: 1 up, 0.5 degraded, 0 down (absent when it says nothing).",
            |v, _| v.feed_health.map(FeedHealth::gauge),
        ),
        (
            "boltz_health_transitions_total",
            Kind::Counter,
            "Health state changes of the DC.",
            |_, transitions| Some(transitions as f64),
        ),
    ];
    // Each (zone, DC) once: its labels, its view and its health's count of
    // changes; every family then walks these rows.
    let mut rows = Vec::new();
    for (zone, view) in zones() {
        let z = zone.origin_str();
        for (dc, v) in zone.datacenters.iter().zip(&view.dcs) {
            let key = (z.clone(), dc.name.clone());
            let transitions = health.get(&key).map_or(0, |h| h.transitions);
            rows.push((key, v, transitions));
        }
    }
    for (name, kind, help, value) in per_dc {
        let mut f = e.family(name, kind, help);
        for ((z, dc), v, transitions) in &rows {
            if let Some(x) = value(v, *transitions) {
                f.sample(&[("zone", z), ("dc", dc)], x);
            }
        }
    }
}
