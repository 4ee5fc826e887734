//! Counters of the query path and their Prometheus text rendering. Counting
//! is a relaxed atomic add into a fixed table (rcode × qtype) in a per-thread
//! shard, so it costs the query path no lock, no allocation and no cache
//! line shared between cores; shards are summed when scraped. Gauges
//! (temperature, prices, health) are read from the current [`World`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::control::Control;

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

/// Number of counter shards; threads beyond it share.
pub const SHARDS: usize = 16;

static NEXT_SHARD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SHARD: usize = (NEXT_SHARD.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
}

/// This thread's shard.
#[inline]
pub fn shard() -> usize {
    SHARD.with(|s| *s)
}

/// A value on its own cache lines (two, against adjacent-line prefetch).
#[derive(Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// A counter split over [`SHARDS`] cache-line-padded cells.
pub struct ShardedCounter(Box<[Padded<AtomicU64>]>);

impl Default for ShardedCounter {
    fn default() -> Self {
        ShardedCounter((0..SHARDS).map(|_| Padded::default()).collect())
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl ShardedCounter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

type QueryTable = [[AtomicU64; QTYPES.len()]; RCODES.len()];

/// Query-path counters.
pub struct Metrics {
    queries: Box<[Padded<QueryTable>]>,
    dropped: ShardedCounter,
    truncated: ShardedCounter,
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
            reloads_ok: ShardedCounter::default(),
            reloads_failed: ShardedCounter::default(),
        }
    }
}

impl Metrics {
    #[inline]
    pub fn count(&self, rcode: ResponseCode, qtype: Option<RecordType>) {
        self.queries[shard()].0[rcode_slot(rcode)][qtype_slot(qtype)]
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_dropped(&self) {
        self.dropped.add(1);
    }

    pub fn count_truncated(&self) {
        self.truncated.add(1);
    }

    fn queries_at(&self, r: usize, t: usize) -> u64 {
        self.queries
            .iter()
            .map(|s| s.0[r][t].load(Ordering::Relaxed))
            .sum()
    }

    pub fn count_reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.add(1);
    }

    /// Prometheus text exposition of the counters and the control plane's
    /// gauges.
    pub fn render(&self, control: &Control) -> String {
        let mut o = String::with_capacity(4096);
        o.push_str(
            "# HELP boltz_queries_total DNS queries answered, by response code and query type.\n",
        );
        o.push_str("# TYPE boltz_queries_total counter\n");
        for (ri, (rname, _)) in RCODES.iter().enumerate() {
            for (ti, tname) in QTYPES.iter().enumerate() {
                let v = self.queries_at(ri, ti);
                if v > 0 {
                    let _ = writeln!(
                        o,
                        "boltz_queries_total{{rcode=\"{rname}\",qtype=\"{tname}\"}} {v}"
                    );
                }
            }
        }
        let simple = [
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
                "boltz_reloads_total",
                "Successful zone reloads.",
                &self.reloads_ok,
            ),
            (
                "boltz_reload_failures_total",
                "Rejected zone reloads (old zones kept).",
                &self.reloads_failed,
            ),
        ];
        for (name, help, c) in simple {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }

        let world = control.world();
        let health = control.health_of();
        let mut t = String::new();
        let mut dc_lines: [(String, &str, &str); 6] = [
            (
                String::new(),
                "boltz_dc_answers_total",
                "Queries whose first answer was this DC.\n# TYPE boltz_dc_answers_total counter",
            ),
            (
                String::new(),
                "boltz_dc_up",
                "1 if the DC is usable (up or unknown, not drained).\n# TYPE boltz_dc_up gauge",
            ),
            (
                String::new(),
                "boltz_dc_drained",
                "1 if an operator drained the DC.\n# TYPE boltz_dc_drained gauge",
            ),
            (
                String::new(),
                "boltz_dc_utilisation",
                "Smoothed utilisation of the DC.\n# TYPE boltz_dc_utilisation gauge",
            ),
            (
                String::new(),
                "boltz_dc_price",
                "Price mu of the DC (energy units).\n# TYPE boltz_dc_price gauge",
            ),
            (
                String::new(),
                "boltz_health_transitions_total",
                "Health state changes of the DC.\n# TYPE boltz_health_transitions_total counter",
            ),
        ];
        for (zone, view) in world.zones.zones.iter().zip(&world.views) {
            let z = zone.origin_str();
            let _ = writeln!(t, "boltz_temperature{{zone=\"{z}\"}} {}", view.temperature);
            let _ = writeln!(
                t,
                "boltz_global_utilisation{{zone=\"{z}\"}} {}",
                view.global_utilisation
            );
            for (dc, v) in zone.datacenters.iter().zip(&view.dcs) {
                let l = format!("{{zone=\"{z}\",dc=\"{}\"}}", dc.name);
                let transitions = health
                    .get(&(z.clone(), dc.name.clone()))
                    .map_or(0, |h| h.transitions);
                let values = [
                    v.counters.answers.get() as f64,
                    f64::from(u8::from(v.usable())),
                    f64::from(u8::from(v.drained)),
                    v.utilisation,
                    v.mu,
                    transitions as f64,
                ];
                for (line, value) in dc_lines.iter_mut().zip(values) {
                    let _ = writeln!(line.0, "{}{l} {value}", line.1);
                }
            }
        }
        o.push_str("# HELP boltz_temperature Current Boltzmann temperature T of the zone.\n# TYPE boltz_temperature gauge\n");
        o.push_str("# HELP boltz_global_utilisation Sum of load over sum of capacity in the zone.\n# TYPE boltz_global_utilisation gauge\n");
        o.push_str(&t);
        for (lines, name, help) in dc_lines {
            let _ = writeln!(o, "# HELP {name} {help}");
            o.push_str(&lines);
        }
        o
    }
}
