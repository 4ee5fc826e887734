//! `/v1/site`: the report of the node's own datacenter (`boltz serve
//! --datacenter NAME`), served as that DC's load feed for DNS nodes
//! elsewhere (`load = { url = "http://fra-dns:5380/v1/site" }`). The body
//! is the [`FeedReport`] plus `"datacenter"`, so the load-feed parser reads
//! it back.

use std::sync::Arc;

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

/// The slot holding the latest report of this node's own datacenter; the
/// producer `set`s it, `/v1/site` serves it.
#[derive(Debug)]
pub struct SiteFeed {
    datacenter: String,
    report: ArcSwapOption<FeedReport>,
}

impl SiteFeed {
    /// An empty slot for `datacenter` (`/v1/site` answers 503 until the
    /// first report).
    pub fn new(datacenter: impl Into<String>) -> Self {
        SiteFeed {
            datacenter: datacenter.into(),
            report: ArcSwapOption::empty(),
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
