//! The local API of `boltz l4` (axum), on a Unix socket (file permissions
//! guard it) or on loopback TCP (changes then need the bearer token).
//!
//! | method | path | |
//! |---|---|---|
//! | PUT | `/v1/services/{vip}` | whole backend set + version; 200 once live |
//! | GET | `/v1/services`, `/v1/services/{vip}` | specs and slot counts |
//! | DELETE | `/v1/services/{vip}` | packets to the VIP pass to the kernel again |
//! | GET | `/v1/load` | rates, active flows, utilisation (boltz serve's load-feed shape) |
//! | GET | `/metrics` | Prometheus text |
//!
//! `{vip}` is `tcp:10.0.0.1:80` or `udp:[2001:db8::1]:53`.
//!
//! This file holds the state, the routes and the service handlers;
//! `load` samples the counters for `/v1/load`, `metrics` renders `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::control::{Applied, ApplyError, Control};
use super::neigh;
use super::service::{parse_spec, Forwarding, Vip};
use boltz_core::local_api::{error, refuse_local_change};

mod load;
mod metrics;

use load::load;
pub use load::{sample, Rates};
use metrics::metrics;

#[derive(Clone)]
/// What the local API serves from.
pub struct ApiState {
    /// The state owner of the tables.
    pub control: Arc<Control>,
    /// Required for changes over TCP; `None` on a Unix socket.
    pub token: Option<Arc<str>>,
    /// Served over TCP (changes need the token) rather than a Unix socket.
    pub tcp: bool,
    /// Packets per second of the whole balancer at utilisation 1.
    pub capacity_pps: Option<f64>,
    /// Rates sampled once a second, for `/v1/load`.
    pub rates: Arc<Mutex<Rates>>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/services", get(list))
        .route(
            "/v1/services/{vip}",
            get(one).put(put_service).delete(delete_service),
        )
        .route("/v1/load", get(load))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn refuse(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    refuse_change(s.tcp, s.token.as_deref(), headers)
}

fn refuse_change(tcp: bool, token: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    refuse_local_change(tcp, token, headers, "boltz l4")
}

/// The VIP a change request may act on, or the response refusing it.
fn change_target(s: &ApiState, headers: &HeaderMap, raw: &str) -> Result<Vip, Box<Response>> {
    if let Some(r) = refuse(s, headers) {
        return Err(Box::new(r));
    }
    parse_vip(raw).map_err(|r| Box::new(r.into_response()))
}

type Refusal = (StatusCode, Json<Value>);

fn parse_vip(raw: &str) -> Result<Vip, Refusal> {
    raw.parse().map_err(|e: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e, "field": "vip" })),
        )
    })
}

async fn put_service(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let vip = match change_target(&s, &headers, &raw) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let spec = match parse_spec(&vip, &body) {
        Ok(spec) => spec,
        Err(e) => {
            let msg = e.to_string();
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": msg, "field": e.field })),
            )
                .into_response();
        }
    };
    let version = spec.version;
    let b = s.control.clone();
    // The outer-map swap waits for an RCU grace period: off the runtime.
    let res = tokio::task::spawn_blocking(move || {
        if spec.forwarding == Forwarding::Ipip {
            let routed: Vec<_> = spec
                .backends
                .iter()
                .filter(|x| x.mac.is_none())
                .map(|x| x.address)
                .collect();
            neigh::warm(&routed, Duration::from_millis(200));
        }
        b.apply(vip, spec)
    })
    .await;
    match res {
        Ok(Ok(applied)) => Json(json!({
            "vip": vip.to_string(),
            "version": version,
            "applied": if applied == Applied::Changed { "changed" } else { "unchanged" },
        }))
        .into_response(),
        Ok(Err(e)) => apply_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn apply_error(e: ApplyError) -> Response {
    let code = match e {
        ApplyError::Stale { .. } => StatusCode::CONFLICT,
        ApplyError::Invalid(_) => StatusCode::BAD_REQUEST,
        ApplyError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
        ApplyError::Kernel(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e.to_string())
}

async fn delete_service(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let vip = match change_target(&s, &headers, &raw) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let b = s.control.clone();
    match tokio::task::spawn_blocking(move || b.remove(&vip)).await {
        Ok(Ok(true)) => Json(json!({ "vip": vip.to_string(), "removed": true })).into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no service {vip}")),
        Ok(Err(e)) => apply_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list(State(s): State<ApiState>) -> Response {
    Json(json!({ "services": s.control.services() })).into_response()
}

async fn one(State(s): State<ApiState>, Path(raw): Path<String>) -> Response {
    let vip = match parse_vip(&raw) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match s.control.services().into_iter().find(|v| v.vip == vip) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no service {vip}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn changes_over_tcp_need_the_token() {
        let none = HeaderMap::new();
        assert!(
            refuse_change(false, None, &none).is_none(),
            "unix socket: file mode guards it"
        );
        let code = |r: Option<Response>| r.map(|r| r.status());
        assert_eq!(
            code(refuse_change(true, None, &none)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            code(refuse_change(true, Some("t0k"), &none)),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(refuse_change(true, Some("t0k"), &with_auth("Bearer nope"))),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert!(refuse_change(true, Some("t0k"), &with_auth("Bearer t0k")).is_none());
    }
}
