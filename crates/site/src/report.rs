//! From the data plane's state to the DC's report: utilisation, effective
//! capacity and health, made once per `dataplane.interval`, half an
//! interval off its wall-clock multiples (where price steps fall), and
//! numbered, with the last few samples repeated, so that every DNS node
//! applies the same sequence before each step.
//!
//! The formula (README, "One system"):
//!
//! - **Healthy share** `h`: the weight of L7 backends that take traffic
//!   (not drained, not down by their health check, not ejected) over the
//!   weight of all of them, across the site's pools. A site with only L4
//!   counts its services' backends that are not drained.
//! - **Effective capacity** `C·h`, `C` the DC's declared `capacity`.
//! - **Utilisation** `max(rps / (C·h), u4)`: the L7 request rate against
//!   the effective capacity, or `boltz l4`'s own utilisation (packets/s
//!   against its `capacity_pps`) when that is higher.
//! - **Health**: down when no backend takes traffic, when `h` is below
//!   `down_below`, when a VIP has no backend taking new flows, or when a
//!   component's API has failed `FALL` reports in a row; degraded below
//!   `degraded_below`; up otherwise.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::config::{L4Site, L7Site, Site};
use crate::endpoint::RequestError;
use boltz_core::clock::unix_ms;

/// Reports in a row a component's API may fail before the DC counts as
/// down (one failure is a restart; two are an outage).
pub const FALL: u32 = 2;
const TIMEOUT: Duration = Duration::from_secs(2);

/// A DC's health as its data plane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Enough backends take traffic.
    Up,
    /// Fewer than `degraded_below`.
    Degraded,
    /// None, or fewer than `down_below`, or the data plane is gone.
    Down,
}

/// One report: the load-feed document a DC publishes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Demand over effective capacity.
    pub utilisation: f64,
    /// Effective capacity, requests/s.
    pub capacity: f64,
    /// The data plane's verdict.
    pub health: Health,
    /// Why, when not up (or what limits the share).
    pub reason: Option<String>,
    /// The interval's number: Unix ms / interval ms.
    pub seq: u64,
    /// The previous reports' `(seq, utilisation)`, oldest first (up to
    /// [`RECENT`]): a reader that missed some applies them first.
    pub recent: Vec<(u64, f64)>,
    /// Requests/s per client prefix (`81.2.69.0/24`) through the DC's L7:
    /// where its demand comes from, for a node with a geo database to
    /// locate (its demand map).
    pub clients: Vec<(String, f64)>,
    /// Per declared VIP of the DC's `boltz l4`: whether a backend takes
    /// new flows (what an anycast VIP's announcement follows).
    pub vips: Vec<(String, bool)>,
}

/// How many earlier samples a report repeats.
pub const RECENT: usize = 4;

/// What one look at the data plane found.
#[derive(Debug, Default)]
struct Look {
    /// Healthy and total backend weight.
    healthy: f64,
    total: f64,
    rps: f64,
    u4: f64,
    /// The first problem that makes the DC down.
    down: Option<String>,
    /// What limits the share (the worst pool).
    worst: Option<(f64, String)>,
    clients: Vec<(String, f64)>,
    vips: Vec<(String, bool)>,
}

/// Per component: consecutive failed looks.
#[derive(Debug, Default)]
struct Failing {
    l4: u32,
    l7: u32,
}

/// Makes a report every `dataplane.interval` (on wall-clock multiples) for
/// the site `desired` carries and hands it to `publish`, until `desired`'s
/// sender is dropped.
pub fn spawn(
    desired: watch::Receiver<Arc<Site>>,
    mut publish: impl FnMut(Report) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = Failing::default();
        let mut recent: Vec<(u64, f64)> = Vec::new();
        loop {
            let site = desired.borrow().clone();
            let ms = site.dataplane.interval.as_millis().max(1) as u64;
            // Numbered by the interval it was made for, whatever the looks
            // took: a slow look must not give two reports one number.
            let seq = unix_ms().unwrap_or(0) / ms;
            if let Some(mut r) = make(&site, &mut failing, seq).await {
                r.recent = recent.clone();
                recent.push((r.seq, r.utilisation));
                if recent.len() > RECENT {
                    recent.remove(0);
                }
                publish(r);
            }
            // Reports are made half an interval off the wall-clock
            // multiples the price steps fall on (load_interval is a
            // multiple of this interval), so a report never races a step:
            // every node has it, polling twice per interval, before the
            // next step.
            let next = (seq + 1) * ms + ms / 2;
            let wait = Duration::from_millis(next.saturating_sub(unix_ms().unwrap_or(0)));
            if desired.has_changed().is_err() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    })
}

/// One report of `site`'s data plane as it is now, or none while a
/// component's API has failed fewer than `FALL` looks in a row (a daemon
/// restarting: the last report stands rather than a blind one).
async fn make(site: &Site, failing: &mut Failing, seq: u64) -> Option<Report> {
    let mut look = Look::default();
    let mut blind = false;
    if let Some(l7) = &site.l7 {
        let r = look_l7(l7, &mut look).await;
        blind |= counted(r, &mut failing.l7, "l7", &mut look);
    }
    if let Some(l4) = &site.l4 {
        let r = look_l4(l4, &mut look, site.l7.is_none()).await;
        blind |= counted(r, &mut failing.l4, "l4", &mut look);
    }
    (!blind || look.down.is_some()).then(|| judge(site, look, seq))
}

/// Counts a component's look: a failure makes the DC down once it is the
/// `FALL`th in a row; returns whether this look saw nothing yet.
fn counted(r: Result<(), RequestError>, failing: &mut u32, what: &str, look: &mut Look) -> bool {
    match r {
        Ok(()) => {
            *failing = 0;
            false
        }
        Err(e) => {
            *failing += 1;
            if *failing >= FALL {
                look.down.get_or_insert(format!("{what}: {e}"));
            }
            true
        }
    }
}

/// The report from what a look found (pure, for tests).
fn judge(site: &Site, look: Look, seq: u64) -> Report {
    let share = if look.total > 0.0 {
        look.healthy / look.total
    } else {
        1.0
    };
    let capacity = site.capacity * share;
    let u7 = look.rps
        / if capacity > 0.0 {
            capacity
        } else {
            site.capacity
        };
    let utilisation = u7.max(look.u4);
    let dp = &site.dataplane;
    let limited = || {
        look.worst
            .as_ref()
            .map(|w| w.1.clone())
            .unwrap_or_else(|| format!("{:.0} % of backend weight healthy", share * 100.0))
    };
    let (health, reason) = if let Some(d) = look.down.clone() {
        (Health::Down, Some(d))
    } else if look.total > 0.0 && look.healthy == 0.0 {
        (
            Health::Down,
            Some(format!("no backend takes traffic ({})", limited())),
        )
    } else if share < dp.down_below {
        (Health::Down, Some(limited()))
    } else if share < dp.degraded_below {
        (Health::Degraded, Some(limited()))
    } else {
        (Health::Up, (share < 1.0).then(limited))
    };
    Report {
        utilisation,
        capacity,
        health,
        reason,
        seq,
        recent: Vec::new(),
        clients: look.clients,
        vips: look.vips,
    }
}

async fn look_l7(l7: &L7Site, look: &mut Look) -> Result<(), RequestError> {
    let pools = l7.api.get("/v1/pools", TIMEOUT).await?;
    let load = l7.api.get("/v1/load", TIMEOUT).await?;
    look.rps += load
        .get("requests_per_second")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    look.clients = load
        .get("clients")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get(0)?.as_str()?.to_string(), c.get(1)?.as_f64()?)))
        .filter(|(_, r)| r.is_finite() && *r > 0.0)
        .collect();
    for (name, p) in pools
        .get("pools")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let (mut healthy, mut total, mut n_ok, mut n) = (0.0, 0.0, 0, 0);
        for b in p
            .get("backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let w = b.get("weight").and_then(Value::as_f64).unwrap_or(1.0);
            let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
            let takes = s("state") != "drain"
                && s("health") != "down"
                && !b.get("ejected").and_then(Value::as_bool).unwrap_or(false);
            total += w;
            n += 1;
            if takes {
                healthy += w;
                n_ok += 1;
            }
        }
        look.healthy += healthy;
        look.total += total;
        let share = if total > 0.0 { healthy / total } else { 1.0 };
        if share < look.worst.as_ref().map_or(1.0, |w| w.0) {
            look.worst = Some((
                share,
                format!("pool {name}: {n_ok} of {n} backends take traffic"),
            ));
        }
    }
    Ok(())
}

/// `boltz l4`'s utilisation, and per VIP whether any backend takes new
/// flows; with `count_backends` (no L7 in the site) its backends make the
/// healthy share.
async fn look_l4(l4: &L4Site, look: &mut Look, count_backends: bool) -> Result<(), RequestError> {
    let load = l4.api.get("/v1/load", TIMEOUT).await?;
    look.u4 = load
        .get("utilisation")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let services = l4.api.get("/v1/services", TIMEOUT).await?;
    for s in services
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vip = s.get("vip").and_then(Value::as_str).unwrap_or("?");
        let (mut active, mut total) = (0.0, 0.0);
        for b in s
            .get("backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let w = b.get("weight").and_then(Value::as_f64).unwrap_or(1.0);
            total += w;
            if b.get("state").and_then(Value::as_str) != Some("drain") {
                active += w;
            }
        }
        if l4.services.contains_key(vip) {
            look.vips.push((vip.to_string(), active > 0.0));
            if active == 0.0 {
                look.down
                    .get_or_insert(format!("VIP {vip}: no backend takes new flows"));
            }
        }
        if count_backends {
            look.healthy += active;
            look.total += total;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
