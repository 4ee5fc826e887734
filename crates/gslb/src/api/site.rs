//! `/v1/site`: the report of the node's own datacenter (`boltz serve
//! --datacenter NAME`), served as that DC's load feed for DNS nodes
//! elsewhere (`load = { url = "http://fra-dns:5380/v1/site" }`). The body
//! is the [`FeedReport`] plus `"datacenter"`, so the load-feed parser reads
//! it back. The slot also shows the site's components (the reconcile state
//! of its `boltz l4` and `boltz l7`) in `/v1/status` and `/metrics`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::ApiState;
use crate::load::FeedReport;
use boltz_core::clock::unix_ms;
use boltz_core::local_api::error;
use boltz_core::prometheus::{Exposition, Kind};

/// What the site's components say of themselves, one JSON document each
/// with at least `component` (`l4`, `l7`), `state` (`pending`, `in-sync`,
/// `unreachable`, `rejected`) and the counters `pushes`, `conflicts`,
/// `failures`.
pub type Components = Arc<dyn Fn() -> Vec<Value> + Send + Sync>;

/// The states a component can be in, for the state gauge.
const STATES: [&str; 4] = ["pending", "in-sync", "unreachable", "rejected"];

/// The slot holding the latest report of this node's own datacenter; the
/// producer `set`s it, `/v1/site` serves it.
pub struct SiteFeed {
    datacenter: String,
    report: ArcSwapOption<FeedReport>,
    components: OnceLock<Components>,
}

impl fmt::Debug for SiteFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteFeed")
            .field("datacenter", &self.datacenter)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl SiteFeed {
    /// An empty slot for `datacenter` (`/v1/site` answers 503 until the
    /// first report).
    pub fn new(datacenter: impl Into<String>) -> Self {
        SiteFeed {
            datacenter: datacenter.into(),
            report: ArcSwapOption::empty(),
            components: OnceLock::new(),
        }
    }

    /// Where the components' state comes from (set once, by the site).
    pub fn set_components(&self, f: Components) {
        let _ = self.components.set(f);
    }

    /// The components' documents now.
    pub fn components(&self) -> Vec<Value> {
        self.components.get().map(|f| f()).unwrap_or_default()
    }

    /// `/v1/status`'s `site`: the DC, its latest report, its components.
    pub fn status(&self) -> Value {
        serde_json::json!({
            "datacenter": self.datacenter,
            "report": self.get().map(|r| self.document(&r)),
            "components": self.components(),
        })
    }

    /// The site's families in `/metrics`.
    pub fn render(&self, e: &mut Exposition) {
        let docs = self.components();
        let name = |d: &Value| {
            d.get("component")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        {
            let mut f = e.family(
                "boltz_site_component_state",
                Kind::Gauge,
                "1 for the reconcile state each of the site's components is in.",
            );
            for d in &docs {
                let c = name(d);
                let now = d.get("state").and_then(Value::as_str).unwrap_or("");
                for st in STATES {
                    f.sample(
                        &[("dc", &self.datacenter), ("component", &c), ("state", st)],
                        u64::from(now == st),
                    );
                }
            }
        }
        for (family, key, help) in [
            (
                "boltz_site_pushes_total",
                "pushes",
                "Changes the site's control plane made on a component (PUT, DELETE).",
            ),
            (
                "boltz_site_conflicts_total",
                "conflicts",
                "Pushes a component refused as stale (someone changed it meanwhile).",
            ),
            (
                "boltz_site_failures_total",
                "failures",
                "Reconcile passes that failed (component away, or a push refused).",
            ),
        ] {
            let mut f = e.family(family, Kind::Counter, help);
            for d in &docs {
                let v = d.get(key).and_then(Value::as_u64).unwrap_or(0);
                f.sample(&[("dc", &self.datacenter), ("component", &name(d))], v);
            }
        }
    }

    /// The datacenter this node reports for.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }

    /// Replaces the report served.
    pub fn set(&self, report: FeedReport) {
        self.report.store(Some(Arc::new(report)));
    }

    /// The latest report, if any.
    pub fn get(&self) -> Option<Arc<FeedReport>> {
        self.report.load_full()
    }

    /// The document served: the report, `"datacenter"`, and the time now
    /// as `timestamp_unix_ms` when the report carries none.
    fn document(&self, report: &FeedReport) -> Value {
        let mut doc = serde_json::to_value(report).unwrap_or_default();
        if let Value::Object(map) = &mut doc {
            map.insert("datacenter".into(), self.datacenter.clone().into());
            if report.timestamp_unix_ms.is_none() {
                if let Some(now) = unix_ms() {
                    map.insert("timestamp_unix_ms".into(), now.into());
                }
            }
        }
        doc
    }
}

/// GET `/v1/site`: 200 with the document, 503 before the first report,
/// 404 on a node that reports for no datacenter.
pub(super) async fn site(State(s): State<ApiState>) -> Response {
    let Some(site) = s.site.as_deref() else {
        return error(StatusCode::NOT_FOUND, "this node runs no --datacenter");
    };
    match site.get() {
        Some(report) => Json(site.document(&report)).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no report yet"),
    }
}

#[cfg(test)]
mod tests;
