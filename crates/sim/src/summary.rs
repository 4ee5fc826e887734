//! What a run comes to: per window (cold start to the first event, each
//! event to the next), how long steering took to settle and how good the
//! settled state is against the capacity-respecting optimum.

use serde::Serialize;

use crate::run::{Interval, Run};
use crate::scenario::{EventKind, Scenario};

/// A window is settled from the first interval after which every DC stays
/// at or under capacity and fewer than this share of clients move.
pub const SETTLED_MOVES: f64 = 0.01;

/// One policy in one window of a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct WindowSummary {
    /// The policy.
    pub policy: String,
    /// What opened the window.
    pub window: String,
    /// First interval of the window.
    pub start: u32,
    /// Intervals from the window's start to settled (`None`: never).
    pub settle: Option<u32>,
    /// Mean distance over the settled part (the last half if never settled).
    pub mean_km: f64,
    /// The optimum's mean distance for the window's world.
    pub optimum_km: Option<f64>,
    /// Highest utilisation of any DC over the settled part.
    pub worst_utilisation: f64,
    /// Highest utilisation of any DC over the whole window.
    pub peak_utilisation: f64,
    /// Demand above capacity over the whole window, % of demand.
    pub over_pct: f64,
    /// Mean share of clients moving per interval over the settled part, %.
    pub moved_pct: f64,
    /// Demand that changed DC over the window, over the excess demand at
    /// its start (when the window opened with a DC over capacity).
    pub moved_per_excess: Option<f64>,
    /// Intervals in which total demand made the target infeasible.
    pub infeasible: u32,
}

impl WindowSummary {
    /// Mean distance over the optimum's.
    pub fn ratio(&self) -> Option<f64> {
        self.optimum_km.map(|o| self.mean_km / o)
    }
}

/// The windows of a run.
pub fn summarise(run: &Run, scenario: &Scenario, optimum: &[Option<f64>]) -> Vec<WindowSummary> {
    let mut starts: Vec<(u32, String)> = vec![(0, "cold start".into())];
    for e in &scenario.events {
        let what = describe(&e.kind);
        match starts.last_mut() {
            Some(last) if last.0 == e.at => last.1 = format!("{}, {what}", last.1),
            _ => starts.push((e.at, what)),
        }
    }
    let mut out = Vec::new();
    for (k, (start, what)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(scenario.intervals, |s| s.0);
        let w = &run.series[*start as usize..end as usize];
        if w.is_empty() {
            continue;
        }
        out.push(window(
            run,
            w,
            *start,
            what,
            optimum.get(k).copied().flatten(),
        ));
    }
    out
}

fn window(
    run: &Run,
    w: &[Interval],
    start: u32,
    what: &str,
    optimum_km: Option<f64>,
) -> WindowSummary {
    let ok = |i: &Interval| {
        i.dcs.iter().all(|d| d.demand <= d.capacity * (1.0 + 1e-9)) && i.moved < SETTLED_MOVES
    };
    // The first interval from which every later one in the window is ok.
    let mut settle = None;
    for k in (0..w.len()).rev() {
        if ok(&w[k]) {
            settle = Some(k as u32);
        } else {
            break;
        }
    }
    let tail = &w[settle.map_or(w.len() / 2, |s| s as usize)..];
    let util = |i: &Interval| i.dcs.iter().map(|d| d.utilisation()).fold(0.0, f64::max);
    let demand: f64 = w.iter().map(|i| i.demand).sum();
    let start_excess = w.iter().take(3).map(|i| i.excess).fold(0.0, f64::max);
    let moved: f64 = w.iter().skip(1).map(|i| i.moved_demand).sum();
    WindowSummary {
        policy: run.policy.clone(),
        window: what.to_string(),
        start,
        settle,
        mean_km: mean(tail.iter().map(|i| i.mean_km)),
        optimum_km,
        worst_utilisation: tail.iter().map(util).fold(0.0, f64::max),
        peak_utilisation: w.iter().map(util).fold(0.0, f64::max),
        over_pct: 100.0 * w.iter().map(|i| i.excess).sum::<f64>() / demand.max(f64::MIN_POSITIVE),
        moved_pct: 100.0 * mean(tail.iter().map(|i| i.moved)),
        moved_per_excess: (start > 0 && start_excess > 0.0).then(|| moved / start_excess),
        infeasible: w.iter().filter(|i| i.infeasible).count() as u32,
    }
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn describe(k: &EventKind) -> String {
    match k {
        EventKind::Capacity { dc, factor } => format!("{dc} capacity ×{factor}"),
        EventKind::Drain { dc } => format!("{dc} drained"),
        EventKind::Undrain { dc } => format!("{dc} undrained"),
        EventKind::Down { dc } => format!("{dc} down"),
        EventKind::Up { dc } => format!("{dc} up"),
        EventKind::Crowd { factor, .. } => format!("crowd ×{factor}"),
        EventKind::Move { client, .. } => format!("client {client} moved"),
    }
}

/// The summary as a fixed-width table.
pub fn table(rows: &[WindowSummary]) -> String {
    let mut s = format!(
        "{:<11} {:<24} {:>6} {:>8} {:>7} {:>6} {:>6} {:>7} {:>7} {:>8}\n",
        "policy",
        "window",
        "settle",
        "mean km",
        "vs opt",
        "worst",
        "peak",
        "over %",
        "moved %",
        "moved/ex"
    );
    for r in rows {
        let settle = r.settle.map_or("never".to_string(), |v| v.to_string());
        let ratio = r.ratio().map_or("-".to_string(), |v| format!("{v:.3}"));
        let mpe = r
            .moved_per_excess
            .map_or("-".to_string(), |v| format!("{v:.2}"));
        s.push_str(&format!(
            "{:<11} {:<24} {:>6} {:>8.0} {:>7} {:>6.3} {:>6.3} {:>7.3} {:>7.3} {:>8}\n",
            r.policy,
            truncate(&r.window, 24),
            settle,
            r.mean_km,
            ratio,
            r.worst_utilisation,
            r.peak_utilisation,
            r.over_pct,
            r.moved_pct,
            mpe
        ));
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
