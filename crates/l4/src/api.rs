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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::control::{Applied, ApplyError, Control, Counters};
use super::neigh;
use super::service::{parse_spec, Forwarding, Vip};
use boltz_core::local_api::{error, refuse_local_change};
use boltz_core::prometheus::{Exposition, Kind};

/// Seconds a connection-table entry counts as an active flow after its last packet.
pub const ACTIVE_FLOW_IDLE: Duration = Duration::from_secs(60);

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

/// Two counter snapshots a second or so apart, and the last flow count.
#[derive(Default)]
pub struct Rates {
    prev: Option<(Instant, Counters)>,
    cur: Option<(Instant, Counters)>,
    active_vip: BTreeMap<String, u64>,
    active_backend: BTreeMap<String, u64>,
}

/// Samples counters every `every`; active flows (and a neighbour refresh)
/// every fifth sample.
pub async fn sample(balancer: Arc<Control>, rates: Arc<Mutex<Rates>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    for n in 0u64.. {
        tick.tick().await;
        let b = balancer.clone();
        let flows = n % 5 == 0;
        let res = tokio::task::spawn_blocking(move || {
            if flows {
                neigh::warm(&b.routed_backends(), Duration::ZERO);
            }
            let c = b.counters()?;
            let f = if flows {
                Some(b.active_flows(ACTIVE_FLOW_IDLE.as_nanos() as u64)?)
            } else {
                None
            };
            std::io::Result::Ok((c, f))
        })
        .await;
        let Ok(Ok((c, f))) = res else {
            tracing::warn!("l4 counter sample failed");
            continue;
        };
        let mut r = rates.lock().expect("rates");
        if let Some((per_vip, per_backend)) = f {
            r.active_vip = per_vip
                .iter()
                .filter_map(|(i, n)| c.vip_ids.get(i).map(|v| (v.to_string(), *n)))
                .collect();
            r.active_backend = per_backend
                .iter()
                .filter_map(|(i, n)| c.index.get(i).map(|a| (a.to_string(), *n)))
                .collect();
        }
        r.prev = r.cur.take();
        r.cur = Some((Instant::now(), c));
    }
}

fn rate_entry(
    now: &[u64; 3],
    then: Option<&[u64; 3]>,
    secs: f64,
    active: u64,
    capacity: Option<f64>,
) -> Value {
    let d = |i: usize| then.map_or(0.0, |t| now[i].saturating_sub(t[i]) as f64 / secs);
    let mut m = Map::new();
    m.insert("packets_per_second".into(), json!(d(0)));
    m.insert("bytes_per_second".into(), json!(d(1)));
    m.insert("new_flows_per_second".into(), json!(d(2)));
    m.insert("active_flows".into(), json!(active));
    m.insert("packets".into(), json!(now[0]));
    m.insert("bytes".into(), json!(now[1]));
    if let Some(c) = capacity {
        m.insert("utilisation".into(), json!(d(0) / c));
    }
    Value::Object(m)
}

/// The `/v1/load` document.
pub fn load_document(s: &ApiState) -> Value {
    let r = s.rates.lock().expect("rates");
    let Some((t1, cur)) = &r.cur else {
        return json!({ "utilisation": 0.0, "packets_per_second": 0.0, "vips": {}, "backends": {} });
    };
    let (secs, prev) = match &r.prev {
        Some((t0, p)) => (t1.duration_since(*t0).as_secs_f64().max(1e-3), Some(p)),
        None => (1.0, None),
    };
    let specs = s.control.capacities();
    let mut vips = Map::new();
    let (mut pps, mut bps, mut nfs, mut active, mut worst) = (0.0, 0.0, 0.0, 0u64, None::<f64>);
    for (vip, c) in &cur.vips {
        let then = prev.and_then(|p| p.vips.get(vip));
        let a = r.active_vip.get(&vip.to_string()).copied().unwrap_or(0);
        let e = rate_entry(c, then, secs, a, specs.get(vip).copied().flatten());
        pps += e["packets_per_second"].as_f64().unwrap_or(0.0);
        bps += e["bytes_per_second"].as_f64().unwrap_or(0.0);
        nfs += e["new_flows_per_second"].as_f64().unwrap_or(0.0);
        active += a;
        if let Some(u) = e.get("utilisation").and_then(Value::as_f64) {
            worst = Some(worst.map_or(u, |w: f64| w.max(u)));
        }
        vips.insert(vip.to_string(), e);
    }
    let mut backends = Map::new();
    for (addr, c) in &cur.backends {
        let then = prev.and_then(|p| p.backends.get(addr));
        let a = r
            .active_backend
            .get(&addr.to_string())
            .copied()
            .unwrap_or(0);
        backends.insert(addr.to_string(), rate_entry(c, then, secs, a, None));
    }
    // Utilisation against the whole balancer's capacity, else the busiest
    // VIP's against its own; 0 when no capacity is configured anywhere.
    let utilisation = s.capacity_pps.map(|c| pps / c).or(worst).unwrap_or(0.0);
    json!({
        "utilisation": utilisation,
        "packets_per_second": pps,
        "bytes_per_second": bps,
        "new_flows_per_second": nfs,
        "active_flows": active,
        "capacity_pps": s.capacity_pps,
        "vips": vips,
        "backends": backends,
    })
}

async fn load(State(s): State<ApiState>) -> Response {
    Json(load_document(&s)).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let b = s.control.clone();
    let Ok(Ok(c)) = tokio::task::spawn_blocking(move || b.counters()).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "reading counters failed");
    };
    let out = render_metrics(&c);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

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
