//! One reconcile pass against `boltz l7`: pools first (new and changed,
//! each with a version above the live one), then the route list (one
//! `PUT` of the whole list when it differs), then pools no longer declared
//! (after the routes stopped naming them).

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{json, Value};

use crate::config::L7Site;
use crate::pass::{written, Memory, PassError, TIMEOUT};

/// Reconciles once; returns each pool's live version.
pub async fn pass(site: &L7Site, m: &mut Memory) -> Result<BTreeMap<String, u64>, PassError> {
    let ep = &site.api;
    let live = ep.get("/v1/pools", TIMEOUT).await?;
    let live_pools = live.get("pools").and_then(Value::as_object);
    let live_version = |name: &str| {
        live_pools
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("version"))
            .and_then(Value::as_u64)
    };
    let mut versions = BTreeMap::new();
    for (name, cfg) in &site.pools {
        let want = serde_json::to_value(cfg).map_err(|e| PassError::Rejected(e.to_string()))?;
        let lv = live_version(name);
        if !m.stale(name, lv, &want) {
            versions.insert(name.clone(), lv.unwrap_or(0));
            continue;
        }
        let version = m.next_version(name, lv);
        let mut body = want.clone();
        if let Value::Object(o) = &mut body {
            o.insert("version".into(), Value::from(version));
        }
        let a = ep
            .request(
                Method::PUT,
                &format!("/v1/pools/{name}"),
                Some(&body),
                TIMEOUT,
            )
            .await?;
        written(&format!("PUT pool {name}"), &a)?;
        m.pushed.insert(name.clone(), (version, want));
        m.pushes += 1;
        versions.insert(name.clone(), version);
    }
    let want_routes =
        serde_json::to_value(&site.routes).map_err(|e| PassError::Rejected(e.to_string()))?;
    let live_routes = ep.get("/v1/routes", TIMEOUT).await?;
    if live_routes.get("routes") != Some(&want_routes) {
        let a = ep
            .request(
                Method::PUT,
                "/v1/routes",
                Some(&json!({ "routes": want_routes })),
                TIMEOUT,
            )
            .await?;
        written("PUT routes", &a)?;
        m.pushes += 1;
    }
    for name in live_pools.into_iter().flat_map(|p| p.keys()) {
        if site.pools.contains_key(name) {
            continue;
        }
        let a = ep
            .request(Method::DELETE, &format!("/v1/pools/{name}"), None, TIMEOUT)
            .await?;
        if a.status != 404 {
            written(&format!("DELETE pool {name}"), &a)?;
            m.pushes += 1;
        }
        m.pushed.remove(name);
    }
    Ok(versions)
}
