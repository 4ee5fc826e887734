//! `/metrics`: the data path's counters as Prometheus text (events by
//! kind, packets, bytes and new flows per VIP and per backend).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use boltz_core::local_api::error;
use boltz_core::prometheus::{Exposition, Kind};

use super::ApiState;
use crate::control::Counters;

/// `GET /metrics`.
pub(super) async fn metrics(State(s): State<ApiState>) -> Response {
    let b = s.control.clone();
    let Ok(Ok(c)) = tokio::task::spawn_blocking(move || b.counters()).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "reading counters failed");
    };
    boltz_core::local_api::metrics(render_metrics(&c))
}

/// The Prometheus text of the data path's counters.
fn render_metrics(c: &Counters) -> String {
    let mut e = Exposition::new();
    {
        let mut f = e.family(
            "boltz_l4_events_total",
            Kind::Counter,
            "Data-path events by kind (passes and drops name their reason).",
        );
        for (k, v) in &c.global {
            f.sample(&[("kind", k)], *v);
        }
    }
    for (what, idx, help) in [
        ("packets", 0, "Packets forwarded"),
        ("bytes", 1, "Bytes forwarded (L3)"),
        ("new_flows", 2, "Flows first seen"),
    ] {
        let name = format!("boltz_l4_vip_{what}_total");
        let mut f = e.family(&name, Kind::Counter, &format!("{help} per VIP."));
        for (vip, v) in &c.vips {
            f.sample(&[("vip", &vip.to_string())], v[idx]);
        }
        let name = format!("boltz_l4_backend_{what}_total");
        let mut f = e.family(&name, Kind::Counter, &format!("{help} per backend."));
        for (addr, v) in &c.backends {
            f.sample(&[("backend", &addr.to_string())], v[idx]);
        }
    }
    e.finish()
}
