//! One reconcile pass against `boltz l4`: every declared service whose
//! live spec differs (or that is missing, or holds a version this node did
//! not push) is `PUT` with a version above the live one; services no
//! longer declared are deleted, so their packets pass to the kernel again.

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::Value;

use crate::config::{l4::strip_live, L4Site};
use crate::pass::{written, Memory, PassError, TIMEOUT};

/// Reconciles once; returns each VIP's live version.
pub async fn pass(site: &L4Site, m: &mut Memory) -> Result<BTreeMap<String, u64>, PassError> {
    let ep = &site.api;
    let live = ep.get("/v1/services", TIMEOUT).await?;
    let mut held: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for s in live
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(vip), Some(version)) = (
            s.get("vip").and_then(Value::as_str),
            s.get("version").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let mut spec = s.clone();
        strip_live(&mut spec);
        held.insert(vip.to_string(), (version, spec));
    }
    let mut versions = BTreeMap::new();
    for (vip, svc) in &site.services {
        let live = held.get(vip);
        let lv = live.map(|l| l.0);
        // The live spec is compared too: l4 keeps its services across its
        // own restarts, and one changed by hand keeps its version.
        let same_spec = live.is_some_and(|l| l.1 == svc.spec);
        if let (Some(v), true) = (lv, same_spec) {
            // The live spec is what is declared (l4 keeps its services
            // across its own restarts and ours): adopt its version.
            m.pushed.insert(vip.clone(), (v, svc.spec.clone()));
            versions.insert(vip.clone(), v);
            continue;
        }
        let version = m.next_version(vip, lv);
        let mut body = svc.spec.clone();
        if let Value::Object(o) = &mut body {
            o.insert("version".into(), Value::from(version));
        }
        let a = ep
            .request(
                Method::PUT,
                &format!("/v1/services/{vip}"),
                Some(&body),
                TIMEOUT,
            )
            .await?;
        written(&format!("PUT service {vip}"), &a)?;
        m.pushed.insert(vip.clone(), (version, svc.spec.clone()));
        m.pushes += 1;
        versions.insert(vip.clone(), version);
    }
    for vip in held.keys().filter(|v| !site.services.contains_key(*v)) {
        let a = ep
            .request(
                Method::DELETE,
                &format!("/v1/services/{vip}"),
                None,
                TIMEOUT,
            )
            .await?;
        if a.status != 404 {
            written(&format!("DELETE service {vip}"), &a)?;
            m.pushes += 1;
        }
        m.pushed.remove(vip);
    }
    Ok(versions)
}
