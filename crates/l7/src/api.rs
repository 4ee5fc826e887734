//! The local API of `boltz l7` (axum), on a Unix socket (file permissions
//! guard it) or on loopback TCP (changes then need the bearer token).
//!
//! | method | path | |
//! |---|---|---|
//! | PUT | `/v1/pools/{name}` | a whole pool (backends, algorithm, checks) + version |
//! | GET | `/v1/pools`, `/v1/pools/{name}` | each backend's live state |
//! | DELETE | `/v1/pools/{name}` | refused while a route uses it |
//! | PUT, GET | `/v1/routes` | the whole route list |
//! | GET | `/v1/load` | rates, latency, errors, utilisation (boltz serve's load-feed shape) |
//! | GET | `/metrics` | Prometheus text |

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::config::{from_json, valid_pool_name, PoolConfig, RouteConfig};
use super::control::{Control, UpdateError};
use super::metrics::quantile_ms;
use super::pool::Pool;
use boltz_core::clock::precise_ns;
use boltz_core::local_api::{error, refuse_local_change};
use boltz_core::prometheus::{Exposition, Kind};

#[derive(Clone)]
/// What the local API serves from.
pub struct ApiState {
    /// The proxy's state owner.
    pub control: Arc<Control>,
    /// Required for changes over TCP; `None` on a Unix socket.
    pub token: Option<Arc<str>>,
    /// Served over TCP rather than a Unix socket.
    pub tcp: bool,
    /// Rates sampled by [`sample`], for `/v1/load`.
    pub rates: Arc<Mutex<Rates>>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/pools", get(list_pools))
        .route(
            "/v1/pools/{name}",
            get(one_pool).put(put_pool).delete(delete_pool),
        )
        .route("/v1/routes", get(get_routes).put(put_routes))
        .route("/v1/load", get(load))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn refuse(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    refuse_local_change(s.tcp, s.token.as_deref(), headers, "boltz l7")
}

fn bad_request(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

fn update_error(e: UpdateError) -> Response {
    match e {
        UpdateError::Stale { .. } => error(StatusCode::CONFLICT, e.to_string()),
        UpdateError::Invalid(_) => bad_request(e.to_string()),
    }
}

async fn put_pool(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refuse(&s, &headers) {
        return r;
    }
    if !valid_pool_name(&name) {
        return bad_request("name: letters, digits, '-', '_' and '.', up to 64");
    }
    let mut doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("body: not JSON: {e}")),
    };
    let Some(obj) = doc.as_object_mut() else {
        return bad_request("body: must be a JSON object");
    };
    let version = match obj.remove("version") {
        None => return bad_request("version: missing"),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => return bad_request(format!("version: must be an integer ≥ 1, got {v}")),
        },
    };
    if !obj.contains_key("backends") {
        return bad_request("backends: missing (give the whole backend set)");
    }
    let config: PoolConfig = match from_json(doc) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    match s.control.put_pool(&name, version, config) {
        Ok(changed) => {
            Json(json!({ "pool": name, "version": version, "changed": changed })).into_response()
        }
        Err(e) => update_error(e),
    }
}

async fn delete_pool(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse(&s, &headers) {
        return r;
    }
    match s.control.delete_pool(&name) {
        Ok(true) => Json(json!({ "deleted": name })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no pool named {name:?}")),
        Err(e) => update_error(e),
    }
}

async fn put_routes(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = refuse(&s, &headers) {
        return r;
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("body: not JSON: {e}")),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        routes: Vec<RouteConfig>,
    }
    let routes = match from_json::<Body>(doc) {
        Ok(b) => b.routes,
        Err(e) => return bad_request(e),
    };
    match s.control.put_routes(routes) {
        Ok(()) => get_routes(State(s)).await,
        Err(e) => update_error(e),
    }
}

async fn get_routes(State(s): State<ApiState>) -> Response {
    Json(json!({ "routes": s.control.snapshot.load().routes.configs() })).into_response()
}

/// A pool's live state.
pub fn pool_view(p: &Pool) -> Value {
    let now = precise_ns();
    let slow = p.config.slow_start.map_or(0, |d| d.as_nanos() as u64);
    let backends: Vec<Value> = p
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let until = b.ejected_until.load(Relaxed);
            json!({
                "address": b.addr,
                "weight": b.weight(),
                "effective_weight": b.effective_weight(now, slow),
                "state": b.admin_state(),
                "health": b.health(),
                "ejected": b.is_ejected(now),
                "ejected_for_ms": until.saturating_sub(now) / 1_000_000,
                "ejections": b.ejections.load(Relaxed),
                "breaker": b.breaker.state(now),
                "in_flight": b.in_flight(),
                "queued": p.admission[i].waiting(),
                "ewma_ms": b.ewma.get() / 1e6,
                "fail_rate": b.fail_rate(),
                "requests": b.requests.load(Relaxed),
                "failures": b.failures.load(Relaxed),
            })
        })
        .collect();
    json!({
        "version": p.version,
        "lb": p.config.lb.to_string(),
        "panic": p.in_panic(),
        "concurrency_limit": p.concurrency.as_ref().map(|c| c.limit()),
        "backends": backends,
    })
}

async fn list_pools(State(s): State<ApiState>) -> Response {
    let snap = s.control.snapshot.load();
    let pools: BTreeMap<&String, Value> =
        snap.pools.iter().map(|(n, p)| (n, pool_view(p))).collect();
    Json(json!({ "pools": pools })).into_response()
}

async fn one_pool(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    match s.control.snapshot.load().pools.get(&name) {
        Some(p) => Json(pool_view(p)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no pool named {name:?}")),
    }
}

/// Counters at one moment, for rates.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    requests: u64,
    errors: u64,
    latency: Vec<u64>,
    backends: BTreeMap<(String, String), u64>,
}

#[derive(Debug, Default)]
/// Request and byte rates, sampled by [`sample`].
pub struct Rates {
    prev: Option<Sample>,
    cur: Option<Sample>,
    /// The last sample period's requests per client prefix, and its length.
    clients: Option<(crate::clients::Period, f64)>,
}

fn sample_now(l7: &Control) -> Sample {
    let snap = l7.snapshot.load();
    let mut backends = BTreeMap::new();
    for (name, p) in &snap.pools {
        for b in &p.backends {
            backends.insert((name.clone(), b.key.clone()), b.requests.load(Relaxed));
        }
    }
    Sample {
        at: Instant::now(),
        requests: l7.metrics.total(|s| &s.requests),
        errors: l7.metrics.errors(),
        latency: l7.metrics.latency_snapshot(),
        backends,
    }
}

/// Samples the counters every `every`, for `/v1/load`.
pub async fn sample(l7: Arc<Control>, rates: Arc<Mutex<Rates>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let s = sample_now(&l7);
        let clients = l7.clients.take();
        let mut r = rates.lock().expect("rates");
        let secs = r.cur.as_ref().map_or(every.as_secs_f64(), |c| {
            s.at.duration_since(c.at).as_secs_f64()
        });
        r.clients = Some((clients, secs.max(1e-3)));
        r.prev = r.cur.take();
        r.cur = Some(s);
    }
}

/// The `/v1/load` document.
pub fn load_document(s: &ApiState) -> Value {
    let r = s.rates.lock().expect("rates");
    let l7 = &s.control;
    let in_flight = l7.metrics.total(|s| &s.in_flight);
    let capacity = l7.config.capacity_rps;
    let (Some(cur), Some(prev)) = (&r.cur, &r.prev) else {
        return json!({ "utilisation": 0.0, "requests_per_second": 0.0, "in_flight": in_flight, "capacity_rps": capacity });
    };
    let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let rps = cur.requests.saturating_sub(prev.requests) as f64 / secs;
    let errors = cur.errors.saturating_sub(prev.errors) as f64 / secs;
    let mut pools: BTreeMap<String, Value> = BTreeMap::new();
    let snap = l7.snapshot.load();
    for (name, p) in &snap.pools {
        let mut backends = serde_json::Map::new();
        let mut pool_rps = 0.0;
        for b in &p.backends {
            let key = (name.clone(), b.key.clone());
            let d = cur
                .backends
                .get(&key)
                .copied()
                .unwrap_or(0)
                .saturating_sub(prev.backends.get(&key).copied().unwrap_or(0));
            let brps = d as f64 / secs;
            pool_rps += brps;
            backends.insert(
                b.key.clone(),
                json!({ "requests_per_second": brps, "in_flight": b.in_flight() }),
            );
        }
        pools.insert(
            name.clone(),
            json!({
                "requests_per_second": pool_rps,
                "in_flight": p.backends.iter().map(|b| u64::from(b.in_flight())).sum::<u64>(),
                "panic": p.in_panic(),
                "backends": backends,
            }),
        );
    }
    json!({
        "utilisation": capacity.map_or(0.0, |c| rps / c),
        "requests_per_second": rps,
        "in_flight": in_flight,
        "latency_p50_ms": quantile_ms(&cur.latency, Some(&prev.latency), 0.5),
        "latency_p99_ms": quantile_ms(&cur.latency, Some(&prev.latency), 0.99),
        "error_rate": if rps > 0.0 { errors / rps } else { 0.0 },
        "capacity_rps": capacity,
        "pools": pools,
        "clients": clients_document(&r),
    })
}

async fn load(State(s): State<ApiState>) -> Response {
    Json(load_document(&s)).into_response()
}

/// Picks one counter out of a worker's shard.
type ShardCounter = fn(&super::metrics::Shard) -> &std::sync::atomic::AtomicU64;

/// Reads one gauge of a backend at a moment (now_ns).
type BackendGauge = fn(&super::backend::Backend, u64) -> f64;

async fn metrics(State(s): State<ApiState>) -> Response {
    boltz_core::local_api::metrics(render_metrics(&s.control))
}

/// The Prometheus text of the proxy: totals over the workers' shards, then
/// per pool and per backend.
fn render_metrics(control: &Control) -> String {
    let mut e = Exposition::new();
    write_totals(&mut e, &control.metrics);
    write_pools(&mut e, control);
    e.finish()
}

/// The proxy's own counters and gauges, summed over the workers' shards.
fn write_totals(e: &mut Exposition, st: &super::metrics::Metrics) {
    e.single(
        "boltz_l7_requests_total",
        Kind::Counter,
        "Requests received.",
        st.total(|s| &s.requests),
    );
    {
        let mut f = e.family(
            "boltz_l7_responses_total",
            Kind::Counter,
            "Responses sent, by status class.",
        );
        for (class, label) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            f.sample(&[("class", label)], st.total(|s| &s.status[class + 1]));
        }
    }
    {
        let reasons: [(&str, ShardCounter); 5] = [
            ("no_route", |s| &s.no_route),
            ("rate_limited", |s| &s.rate_limited),
            ("no_backend", |s| &s.no_backend),
            ("overloaded", |s| &s.overloaded),
            ("timeout", |s| &s.timeouts),
        ];
        let mut f = e.family(
            "boltz_l7_local_answers_total",
            Kind::Counter,
            "Answers boltz made itself, by reason.",
        );
        for (reason, c) in reasons {
            f.sample(&[("reason", reason)], st.total(c));
        }
    }
    let totals: [(&str, &str, ShardCounter); 4] = [
        (
            "boltz_l7_upstream_errors_total",
            "Upstream connect failures and failed exchanges.",
            |s| &s.upstream_errors,
        ),
        ("boltz_l7_retries_total", "Retries sent.", |s| &s.retries),
        (
            "boltz_l7_retries_refused_total",
            "Retries the retry budget refused.",
            |s| &s.retries_refused,
        ),
        (
            "boltz_l7_upstream_connections_total",
            "Upstream connections opened.",
            |s| &s.upstream_connects,
        ),
    ];
    for (name, help, c) in totals {
        e.single(name, Kind::Counter, help, st.total(c));
    }
    e.single(
        "boltz_l7_client_connections",
        Kind::Gauge,
        "Client connections open.",
        super::listen::OPEN_CONNECTIONS.load(Relaxed),
    );
    e.single(
        "boltz_l7_in_flight",
        Kind::Gauge,
        "Requests in flight.",
        st.total(|s| &s.in_flight),
    );
}

/// Per pool (panic mode) and per backend (traffic, latency, health,
/// ejection, breaker) gauges of the current snapshot.
fn write_pools(e: &mut Exposition, control: &Control) {
    let now = precise_ns();
    let snap = control.snapshot.load();
    {
        let mut f = e.family(
            "boltz_l7_pool_panic",
            Kind::Gauge,
            "1 while a pool balances over all backends (too few healthy).",
        );
        for (name, p) in &snap.pools {
            f.sample(&[("pool", name)], p.in_panic());
        }
    }
    let per_backend: [(&str, Kind, &str, BackendGauge); 6] = [
        (
            "boltz_l7_backend_requests_total",
            Kind::Counter,
            "Requests sent to a backend.",
            |b, _| b.requests.load(Relaxed) as f64,
        ),
        (
            "boltz_l7_backend_in_flight",
            Kind::Gauge,
            "Requests in flight to a backend.",
            |b, _| f64::from(b.in_flight()),
        ),
        (
            "boltz_l7_backend_ewma_seconds",
            Kind::Gauge,
            "PeakEWMA latency of a backend.",
            |b, _| b.ewma.get() / 1e9,
        ),
        (
            "boltz_l7_backend_up",
            Kind::Gauge,
            "1 unless an active check says down.",
            |b, _| f64::from(u8::from(b.health() != super::backend::Health::Down)),
        ),
        (
            "boltz_l7_backend_ejected",
            Kind::Gauge,
            "1 while ejected by outlier detection.",
            |b, now| f64::from(u8::from(b.is_ejected(now))),
        ),
        (
            "boltz_l7_backend_breaker_open",
            Kind::Gauge,
            "1 while the circuit breaker is open.",
            |b, now| {
                f64::from(u8::from(
                    b.breaker.state(now) == super::breaker::BreakerState::Open,
                ))
            },
        ),
    ];
    for (metric, kind, help, value) in per_backend {
        let mut f = e.family(metric, kind, help);
        for (name, p) in &snap.pools {
            for b in &p.backends {
                f.sample(&[("pool", name), ("backend", &b.key)], value(b, now));
            }
        }
    }
}

/// Most client prefixes reported in `/v1/load`.
const MAX_CLIENTS: usize = 1000;

/// `clients`: the last period's requests/s per client prefix, most first,
/// `[["81.2.69.0/24", 12.5], ...]` (at most [`MAX_CLIENTS`]).
fn clients_document(r: &Rates) -> Value {
    let Some((p, secs)) = &r.clients else {
        return json!([]);
    };
    Value::Array(
        p.prefixes
            .iter()
            .take(MAX_CLIENTS)
            .map(|(prefix, n)| json!([prefix, *n as f64 / secs]))
            .collect(),
    )
}
