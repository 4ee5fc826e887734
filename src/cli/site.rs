//! `boltz serve --datacenter NAME`: the glue between the site's control
//! plane (`boltz-site`) and the GSLB. The node runs one reconcile loop per
//! component its DC declares, and the report loop, whose every report is
//! applied to this node's own prices and health (the same path a polled
//! feed takes) and served on `/v1/site` for the DNS nodes of other sites.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::warn;

use boltz_core::clock::unix_ms;
use boltz_gslb::{Control, FeedHealth, FeedReport, SiteFeed};
use boltz_site::{Health, Kind, Report, Shared, Site};

/// A running site.
pub struct Node {
    desired: watch::Sender<Arc<Site>>,
    /// What `/v1/site`, `/v1/status` and `/metrics` show of it.
    pub feed: Arc<SiteFeed>,
}

impl Node {
    /// Starts the loops of `site` (needs a tokio runtime).
    pub fn start(site: Site, control: Arc<Control>) -> Arc<Node> {
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
        let mut unknown_dc = false;
        boltz_site::spawn_reports(rx, move |r| {
            let report = to_feed(&r);
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
        Arc::new(Node { desired, feed })
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

/// A report in the load-feed shape.
fn to_feed(r: &Report) -> FeedReport {
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
        // The site does not map its clients yet (issue 13): the price step
        // gropes by Newton steps for it.
        demand: Vec::new(),
    }
}
