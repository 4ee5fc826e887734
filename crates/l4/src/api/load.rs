//! `/v1/load`: the balancer's rates (packets, bytes and new flows per
//! second), active flows and utilisation, per VIP and per backend, in the
//! shape `boltz serve`'s load feed reads. A sampler task reads the counters
//! once a second and the connection table every fifth second; the handler
//! only computes rates from the last two samples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::ApiState;
use crate::control::{Control, Counters};
use crate::neigh;

/// Seconds a connection-table entry counts as an active flow after its last packet.
pub const ACTIVE_FLOW_IDLE: Duration = Duration::from_secs(60);

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

/// `GET /v1/load`.
pub(super) async fn load(State(s): State<ApiState>) -> Response {
    Json(load_document(&s)).into_response()
}
