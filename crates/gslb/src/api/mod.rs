//! The local HTTP API (axum): read-only status, explain and metrics for
//! anyone who can reach it (127.0.0.1 by default), and state changes —
//! drain, load override — only with the bearer token.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/v1/status` | zones, DCs with health (probe and feed), utilisation, capacity, price, T |
//! | GET | `/v1/site` | this node's own DC report, a load-feed document ([`site`]) |
//! | GET | `/v1/explain?name=&client=&subnet=&type=` | the explain table as JSON |
//! | POST/DELETE | `/v1/datacenters/{dc}/drain[?zone=]` | drain / undrain |
//! | PUT | `/v1/datacenters/{dc}/load[?zone=]` | `{"utilisation": 0.9}` or `null` to clear |
//! | GET | `/v1/anycast` | what the node announces, per prefix ([`anycast`]) |
//! | POST/DELETE | `/v1/anycast/drain` | drain / undrain the node's anycast prefixes |
//! | GET | `/metrics` | Prometheus text |

mod anycast;
mod site;

pub use anycast::AnycastView;
pub use site::SiteFeed;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use boltz_core::local_api::{error, refuse_without_token};

use crate::control::{explain, Control, ControlError, DcStatus, Family};
use crate::geo::GeoDb;
use crate::load::{FeedHealth, LoadSource};
use crate::metrics::Metrics;
use crate::steer::PricePhase;
use boltz_health::HealthStatus;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// The state owner whose snapshot and changes the API serves.
    pub control: Arc<Control>,
    /// The geo database, for explain (`None`: locations unknown).
    pub geo: Option<Arc<GeoDb>>,
    /// The query counters rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Required for state changes; `None` refuses them all.
    pub token: Option<Arc<str>>,
    /// The node's own DC report for `/v1/site` (`None`: it runs no
    /// `--datacenter`).
    pub site: Option<Arc<SiteFeed>>,
    /// What the node announces (`None`: it runs no `--anycast`).
    pub anycast: Option<AnycastView>,
}

/// The API's routes, ready to serve over TCP or a Unix socket.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/explain", get(explain_handler))
        .route("/v1/site", get(site::site))
        .route("/v1/datacenters/{dc}/drain", post(drain).delete(undrain))
        .route("/v1/datacenters/{dc}/load", put(set_load))
        .route("/v1/anycast", get(anycast::get))
        .route(
            "/v1/anycast/drain",
            post(anycast::drain).delete(anycast::undrain),
        )
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn control_error(e: ControlError) -> Response {
    let code = match e {
        ControlError::NoSuchDatacenter(_) | ControlError::NoSuchZone(_) => StatusCode::NOT_FOUND,
        ControlError::InvalidUtilisation(_) | ControlError::Report(_) => StatusCode::BAD_REQUEST,
        ControlError::Http(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, e.to_string())
}

/// `None` when the request may change state, else the response refusing it.
fn refuse_unauthorised(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    refuse_without_token(
        state.token.as_deref(),
        headers,
        "state changes are disabled: start boltz serve with --api-token-file or BOLTZ_API_TOKEN",
    )
}

#[derive(Serialize)]
struct DcOut {
    name: String,
    status: DcStatus,
    health: Option<HealthStatus>,
    drained: bool,
    utilisation: f64,
    load_source: LoadSource,
    /// What the fresh feed says of the DC (`null`: nothing).
    feed_health: Option<FeedHealth>,
    feed_reason: Option<String>,
    price: f64,
    price_phase: PricePhase,
    weight: f64,
    /// Declared in the zone.
    capacity: f64,
    /// The fresh feed's capacity, else the declared.
    effective_capacity: f64,
    location: [f64; 2],
    answers: u64,
}

async fn status(State(s): State<ApiState>) -> Response {
    let world = s.control.world_full();
    let health = s.control.health_of();
    let zones: Vec<_> = world
        .zones
        .zones
        .iter()
        .zip(&world.views)
        .map(|(z, v)| {
            let origin = z.origin_str();
            let dcs: Vec<DcOut> = z
                .datacenters
                .iter()
                .zip(&v.dcs)
                .map(|(d, dv)| DcOut {
                    name: d.name.clone(),
                    status: dv.status(),
                    health: health.get(&(origin.clone(), d.name.clone())).cloned(),
                    drained: dv.drained,
                    utilisation: dv.utilisation,
                    load_source: dv.load_source,
                    feed_health: dv.feed_health,
                    feed_reason: dv.feed_reason.clone(),
                    price: dv.mu,
                    price_phase: dv.phase,
                    weight: d.weight,
                    capacity: d.capacity,
                    effective_capacity: dv.capacity,
                    location: [d.location.lat, d.location.lon],
                    answers: dv.counters.answers.get(),
                })
                .collect();
            json!({
                "origin": origin,
                "file": z.file.display().to_string(),
                "temperature": v.temperature,
                "global_utilisation": v.global_utilisation,
                "price_target": v.price.target,
                "price_infeasible": v.price.infeasible,
                "datacenters": dcs,
            })
        })
        .collect();
    Json(json!({
        "zones": zones,
        "geoip": s.geo.as_ref().map(|g| g.metadata_summary()),
        "site": s.site.as_ref().map(|site| site.status()),
        "anycast": s.anycast.as_ref().map(|a| (a.document)()),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ExplainQuery {
    name: Option<String>,
    client: Option<String>,
    subnet: Option<String>,
    #[serde(rename = "type")]
    qtype: Option<String>,
}

/// Parses the explain parameters shared by the API and the CLI.
pub fn parse_explain_args(
    client: Option<&str>,
    subnet: Option<&str>,
    qtype: Option<&str>,
) -> Result<(IpAddr, Option<ipnet::IpNet>, Family), String> {
    let subnet = subnet
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .map_err(|_| format!("subnet: `{s}` is not a CIDR network"))
        })
        .transpose()?;
    let client = match (client, subnet) {
        (Some(c), _) => c
            .parse::<IpAddr>()
            .map_err(|_| format!("client: `{c}` is not an IP address"))?,
        (None, Some(s)) => s.network(),
        (None, None) => return Err("client: give `client` or `subnet`".into()),
    };
    let family = match qtype.map(|t| t.to_ascii_uppercase()) {
        None => Family::V4,
        Some(t) if t == "A" => Family::V4,
        Some(t) if t == "AAAA" => Family::V6,
        Some(t) => return Err(format!("type: `{t}` must be A or AAAA")),
    };
    Ok((client, subnet, family))
}

async fn explain_handler(State(s): State<ApiState>, Query(q): Query<ExplainQuery>) -> Response {
    let Some(name) = q.name.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "name: missing query parameter");
    };
    let (client, subnet, family) =
        match parse_explain_args(q.client.as_deref(), q.subnet.as_deref(), q.qtype.as_deref()) {
            Ok(x) => x,
            Err(m) => return error(StatusCode::BAD_REQUEST, m),
        };
    let world = s.control.world_full();
    match explain(&world, s.geo.as_deref(), name, client, subnet, family) {
        Ok(mut e) => {
            e.site = s.site.as_ref().map(|site| site.status());
            Json(e).into_response()
        }
        Err(m) => error(StatusCode::NOT_FOUND, m),
    }
}

#[derive(Deserialize)]
struct ZoneQuery {
    zone: Option<String>,
}

async fn drain(
    s: State<ApiState>,
    h: HeaderMap,
    dc: Path<String>,
    z: Query<ZoneQuery>,
) -> Response {
    set_drain(s, h, dc, z, true)
}

async fn undrain(
    s: State<ApiState>,
    h: HeaderMap,
    dc: Path<String>,
    z: Query<ZoneQuery>,
) -> Response {
    set_drain(s, h, dc, z, false)
}

fn set_drain(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(dc): Path<String>,
    Query(z): Query<ZoneQuery>,
    on: bool,
) -> Response {
    if let Some(r) = refuse_unauthorised(&s, &h) {
        return r;
    }
    match s.control.set_drain(&dc, z.zone.as_deref(), on) {
        Ok(n) => Json(json!({ "datacenter": dc, "drained": on, "zones": n })).into_response(),
        Err(e) => control_error(e),
    }
}

/// Parses `{"utilisation": number|null}`, naming the field in every error
/// (serde's own messages give a line and column, not the field).
fn parse_load_body(body: &[u8]) -> Result<Option<f64>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body: not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("body: expected a JSON object like {\"utilisation\": 0.9}")?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "utilisation") {
        return Err(format!("{k}: unknown field (expected `utilisation`)"));
    }
    match obj.get("utilisation") {
        None => Err("utilisation: missing (use null to clear the override)".into()),
        Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(u) if u.is_finite() && u >= 0.0 => Ok(Some(u)),
            _ => Err(format!("utilisation: must be a number ≥ 0, got {n}")),
        },
        Some(other) => Err(format!(
            "utilisation: must be a number ≥ 0 or null, got {other}"
        )),
    }
}

async fn set_load(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(dc): Path<String>,
    Query(z): Query<ZoneQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refuse_unauthorised(&s, &h) {
        return r;
    }
    let utilisation = match parse_load_body(&body) {
        Ok(u) => u,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match s.control.set_load(&dc, z.zone.as_deref(), utilisation) {
        Ok(n) => Json(json!({ "datacenter": dc, "utilisation": utilisation, "zones": n }))
            .into_response(),
        Err(e) => control_error(e),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let site = s.site.clone();
    boltz_core::local_api::metrics(s.metrics.render(
        &s.control.world(),
        &s.control.health_of(),
        |e| {
            if let Some(site) = &site {
                site.render(e);
            }
            if let Some(a) = &s.anycast {
                (a.render)(e);
            }
        },
    ))
}
