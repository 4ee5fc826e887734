//! The server-level scenario (`boltz simulate servers`): one L7 pool, the
//! Boltzmann experiment inside a DC. Requests arrive as a Poisson stream
//! at a rate near the pool's capacity; four backends of different speeds
//! (exponential service times of mean 1, 2, 4 and 1 ms, the fourth
//! degrading to 20 ms halfway) each serve [`CONCURRENCY`] requests at once
//! and queue the rest in order. Every arrival is placed by `boltz l7`'s
//! own picker ([`boltz_l7::sim::SimPool`]: the real backends' in-flight
//! counts and PeakEWMA latencies, booked as the proxy books them), so the
//! comparison of `boltzmann`, `p2c-peak-ewma`, `least-request` and
//! `round-robin` is of the code that runs. A discrete-event simulation:
//! no wall clock, deterministic for a seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;

use boltz_core::hash::splitmix64;
use boltz_l7::sim::{Held, SimPool};

/// Mean service time of each backend, ms.
pub const SERVICE_MS: [f64; 4] = [1.0, 2.0, 4.0, 1.0];
/// The fourth backend's mean service time from halfway on, ms.
pub const DEGRADED_MS: f64 = 20.0;
/// Requests each backend serves at once (its capacity for `boltzmann`).
pub const CONCURRENCY: u32 = 8;
/// The pick policies compared by default.
pub const PICKS: [&str; 4] = ["boltzmann", "p2c-peak-ewma", "least-request", "round-robin"];

/// What to simulate.
#[derive(Clone, Debug)]
pub struct ServersOptions {
    /// Arrivals per second. The pool serves 22 000/s before the fourth
    /// backend degrades and 14 400/s after.
    pub rate: f64,
    /// Simulated seconds (the degradation is at half).
    pub seconds: f64,
    /// Seed of arrivals, service times and the picker's draws.
    pub seed: u64,
    /// Pick algorithms (`boltz l7` catalogue names), in table order.
    pub picks: Vec<String>,
}

impl Default for ServersOptions {
    fn default() -> Self {
        ServersOptions {
            rate: 13_000.0,
            seconds: 10.0,
            seed: 1,
            picks: PICKS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One pick policy's run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServersRun {
    /// The pick algorithm.
    pub pick: String,
    /// Requests answered within the run, per second.
    pub served_per_s: f64,
    /// Requests still queued or in service at the end.
    pub unfinished: u64,
    /// Median latency (queueing + service) of the answered ones, ms.
    pub p50_ms: f64,
    /// Their 99th percentile, ms.
    pub p99_ms: f64,
    /// The 99th percentile of those that arrived after the degradation.
    pub p99_degraded_ms: f64,
    /// Share of requests each backend got before the degradation.
    pub share_before: Vec<f64>,
    /// And after it.
    pub share_after: Vec<f64>,
}

/// Runs every pick policy of `opts` through the scenario.
pub fn servers(opts: &ServersOptions) -> Result<Vec<ServersRun>, String> {
    opts.picks.iter().map(|p| run_one(p, opts)).collect()
}

/// One backend's queue.
#[derive(Default)]
struct Station {
    busy: u32,
    waiting: VecDeque<usize>,
}

fn run_one(pick: &str, opts: &ServersOptions) -> Result<ServersRun, String> {
    let n = SERVICE_MS.len();
    let pool = SimPool::new(pick, &[f64::from(CONCURRENCY); 4])?;
    boltz_l7::sim::reseed(opts.seed);
    let mut rng = opts.seed;
    let mut unit = move || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        // (0, 1]: the logarithms below stay finite.
        ((splitmix64(rng) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    let end = (opts.seconds * 1e9) as u64;
    let half = end / 2;
    // Nanoseconds from 1 s on: PeakEWMA treats time 0 as "no sample yet".
    let t0 = 1_000_000_000u64;
    let gap = 1e9 / opts.rate.max(1e-9);
    let mut next_arrival = (-unit().ln() * gap) as u64;
    let mut stations: Vec<Station> = (0..n).map(|_| Station::default()).collect();
    // Per request: arrival, backend, and its in-flight count.
    let mut reqs: Vec<(u64, usize, Option<Held>)> = Vec::new();
    let mut done: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut latency: Vec<(u64, bool)> = Vec::new();
    let mut picked = [vec![0u64; n], vec![0u64; n]];
    let service = |b: usize, now: u64, unit: &mut dyn FnMut() -> f64| -> u64 {
        let ms = if b == 3 && now >= half {
            DEGRADED_MS
        } else {
            SERVICE_MS[b]
        };
        now + (-unit().ln() * ms * 1e6) as u64
    };
    loop {
        let completion = done.peek().map(|Reverse((t, _))| *t);
        match completion {
            Some(t) if t <= next_arrival && t < end => {
                let Reverse((t, r)) = done.pop().expect("peeked");
                let (arrived, b, held) = &mut reqs[r];
                let held = held.take().expect("a request completes once");
                pool.finish(held, t - *arrived, t0 + t);
                latency.push((t - *arrived, *arrived >= half));
                let s = &mut stations[*b];
                match s.waiting.pop_front() {
                    Some(next) => done.push(Reverse((service(*b, t, &mut unit), next))),
                    None => s.busy -= 1,
                }
            }
            _ if next_arrival < end => {
                let t = next_arrival;
                next_arrival = t + (-unit().ln() * gap).max(1.0) as u64;
                let Some(b) = pool.pick(t0 + t) else {
                    continue;
                };
                picked[usize::from(t >= half)][b] += 1;
                let r = reqs.len();
                reqs.push((t, b, Some(pool.start(b))));
                let s = &mut stations[b];
                if s.busy < CONCURRENCY {
                    s.busy += 1;
                    done.push(Reverse((service(b, t, &mut unit), r)));
                } else {
                    s.waiting.push_back(r);
                }
            }
            _ => break,
        }
    }
    let served = latency.len() as u64;
    let pct = |xs: &mut Vec<u64>, p: f64| -> f64 {
        if xs.is_empty() {
            return f64::NAN;
        }
        xs.sort_unstable();
        let i = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1;
        xs[i] as f64 / 1e6
    };
    let mut all: Vec<u64> = latency.iter().map(|l| l.0).collect();
    let mut after: Vec<u64> = latency.iter().filter(|l| l.1).map(|l| l.0).collect();
    let share = |c: &[u64]| -> Vec<f64> {
        let t = c.iter().sum::<u64>().max(1) as f64;
        c.iter().map(|&x| x as f64 / t).collect()
    };
    Ok(ServersRun {
        pick: pick.to_string(),
        served_per_s: served as f64 / opts.seconds,
        unfinished: reqs.len() as u64 - served,
        p50_ms: pct(&mut all, 0.5),
        p99_ms: pct(&mut all, 0.99),
        p99_degraded_ms: pct(&mut after, 0.99),
        share_before: share(&picked[0]),
        share_after: share(&picked[1]),
    })
}

/// The comparison as a table.
pub fn servers_table(runs: &[ServersRun]) -> String {
    let mut s = format!(
        "{:<14} {:>9} {:>10} {:>7} {:>8} {:>12}  {:<23}  {}\n",
        "pick",
        "served/s",
        "unfinished",
        "p50 ms",
        "p99 ms",
        "p99 degr ms",
        "share before (b1..b4)",
        "share after (b1..b4)"
    );
    let shares = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for r in runs {
        let _ = writeln!(
            s,
            "{:<14} {:>9.0} {:>10} {:>7.2} {:>8.2} {:>12.2}  {:<23}  {}",
            r.pick,
            r.served_per_s,
            r.unfinished,
            r.p50_ms,
            r.p99_ms,
            r.p99_degraded_ms,
            shares(&r.share_before),
            shares(&r.share_after)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_feeds_the_degraded_backend_the_others_do_not() {
        let opts = ServersOptions {
            seconds: 2.0,
            ..ServersOptions::default()
        };
        let runs = servers(&opts).unwrap();
        print!("{}", servers_table(&runs));
        let after = |p: &str| runs.iter().find(|r| r.pick == p).unwrap().share_after[3];
        assert!((after("round-robin") - 0.25).abs() < 0.01);
        for p in ["boltzmann", "p2c-peak-ewma"] {
            assert!(
                after(p) < 0.15,
                "{p} gives the degraded backend {}",
                after(p)
            );
        }
        for r in &runs {
            assert!(r.served_per_s > 0.0 && r.p99_ms >= r.p50_ms, "{r:?}");
        }
        assert!(servers(&ServersOptions {
            picks: vec!["nope".into()],
            ..opts
        })
        .is_err());
    }
}
