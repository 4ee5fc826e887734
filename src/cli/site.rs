//! `boltz serve --datacenter NAME`: the glue between the site's control
//! plane (`boltz-site`) and the GSLB. The node runs one reconcile loop per
//! component its DC declares, and the report loop, whose every report is
//! applied to this node's own prices and health (the same path a polled
//! feed takes) and served on `/v1/site` for the DNS nodes of other sites.
//! The L7's requests per client prefix are located with the node's geo
//! database into the report's demand map, which model-predictive steering
//! fits to capacity.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::warn;

use boltz_core::clock::unix_ms;
use boltz_gslb::{Control, FeedHealth, FeedReport, GeoDb, SiteFeed};
use boltz_site::{Health, Kind, Report, Shared, Site};

/// A running site.
pub struct Node {
    desired: watch::Sender<Arc<Site>>,
    /// What `/v1/site`, `/v1/status` and `/metrics` show of it.
    pub feed: Arc<SiteFeed>,
    /// The latest report's VIPs: whether a backend takes new flows (what
    /// an anycast VIP's announcement follows).
    vips: Arc<Mutex<BTreeMap<IpAddr, bool>>>,
}

impl Node {
    /// Starts the loops of `site` (needs a tokio runtime).
    pub fn start(site: Site, control: Arc<Control>, geo: Option<Arc<GeoDb>>) -> Arc<Node> {
        let dc = site.datacenter.clone();
        let kinds: Vec<Kind> = [
            site.l4.as_ref().map(|_| Kind::L4),
            site.l7.as_ref().map(|_| Kind::L7),
        ]
        .into_iter()
        .flatten()
        .collect();
        let (desired, rx) = watch::channel(Arc::new(site));
        let components: Vec<Shared> = kinds
            .into_iter()
            .map(|k| boltz_site::spawn_reconcile(k, rx.clone()))
            .collect();
        let feed = Arc::new(SiteFeed::new(dc.clone()));
        feed.set_components(Arc::new(move || {
            components
                .iter()
                .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .collect()
        }));
        let slot = feed.clone();
        let vips = Arc::new(Mutex::new(BTreeMap::new()));
        let vip_slot = vips.clone();
        let mut unknown_dc = false;
        boltz_site::spawn_reports(rx, move |r| {
            *vip_slot.lock().unwrap_or_else(|e| e.into_inner()) = vip_addresses(&r.vips);
            let report = to_feed(&r, geo.as_deref());
            match control.apply_report(&dc, None, report.clone()) {
                Ok(_) => unknown_dc = false,
                // Said once: a DC no zone names yet steers nothing.
                Err(e) if !unknown_dc => {
                    warn!(dc = %dc, error = %e, "the data plane's report applies to no zone");
                    unknown_dc = true;
                }
                Err(_) => {}
            }
            slot.set(report);
        });
        Arc::new(Node {
            desired,
            feed,
            vips,
        })
    }

    /// Whether the L4 service on `vip` has a backend taking new flows, as
    /// of the latest report (`None`: no report names it yet).
    pub fn vip_up(&self, vip: IpAddr) -> Option<bool> {
        self.vips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&vip)
            .copied()
    }

    /// A reloaded declaration: the loops push what changed at once.
    pub fn declare(&self, site: Site) {
        self.desired.send_if_modified(|cur| {
            if **cur == site {
                return false;
            }
            *cur = Arc::new(site);
            true
        });
    }
}

/// Per VIP address, whether every L4 service on it (`tcp:10.0.0.1:80`,
/// `udp:[2001:db8::1]:53`) has a backend taking new flows: a site
/// announces an anycast VIP only if it can serve all of it.
fn vip_addresses(vips: &[(String, bool)]) -> BTreeMap<IpAddr, bool> {
    let mut out = BTreeMap::new();
    for (vip, up) in vips {
        // boltz l4's own reading of its VIP keys.
        if let Ok(v) = vip.parse::<boltz_l4::Vip>() {
            *out.entry(v.addr.ip()).or_insert(true) &= *up;
        }
    }
    out
}

/// A report in the load-feed shape; with a geo database, its clients
/// located into the demand map.
fn to_feed(r: &Report, geo: Option<&GeoDb>) -> FeedReport {
    FeedReport {
        utilisation: r.utilisation,
        capacity: (r.capacity > 0.0).then_some(r.capacity),
        health: Some(match r.health {
            Health::Up => FeedHealth::Up,
            Health::Degraded => FeedHealth::Degraded,
            Health::Down => FeedHealth::Down,
        }),
        reason: r.reason.clone(),
        seq: Some(r.seq),
        timestamp_unix_ms: unix_ms(),
        recent: r.recent.clone(),
        demand: geo.map_or_else(Vec::new, |g| locate(g, &r.clients)),
    }
}

/// Requests/s per client prefix as demand cells: each prefix's network
/// address located, cells at the same place summed, in a stable order
/// (every node must read the same map). Prefixes the database does not
/// place are left out (the measured load calibrates the map for them).
fn locate(geo: &GeoDb, clients: &[(String, f64)]) -> Vec<(f64, f64, f64)> {
    let mut cells: BTreeMap<(u64, u64), (f64, f64, f64)> = BTreeMap::new();
    for (prefix, rate) in clients {
        let Some(ip) = prefix
            .split('/')
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        if let Some(at) = geo.lookup(ip).location {
            cells
                .entry((at.lat.to_bits(), at.lon.to_bits()))
                .or_insert((at.lat, at.lon, 0.0))
                .2 += rate;
        }
    }
    cells.into_values().collect()
}

#[cfg(test)]
mod tests;
