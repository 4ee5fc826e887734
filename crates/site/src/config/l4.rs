//! `[datacenters.NAME.l4]`: where the site's `boltz l4` listens and its
//! services. Each service is the body `PUT /v1/services/{vip}` takes, plus
//! its `vip`, which must be one of the DC's answer addresses (the DNS hands
//! clients exactly those). Bodies are checked by `boltz_l4::parse_spec`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::{to_json, Ctx, L4Site};
use boltz_l4::Vip;

/// The default API of `boltz l4`.
pub const DEFAULT_API: &str = "unix:/run/boltz-l4.sock";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct L4Def {
    api: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    services: Vec<Spanned<toml::Table>>,
}

/// One service as pushed: the body without its version, in the canonical
/// form `boltz l4` reports it back (`GET /v1/services`), so the live and the
/// wanted compare field by field.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Service {
    /// The body of `PUT /v1/services/{vip}`, `version` left out.
    pub spec: Value,
}

pub(super) fn l4(cx: &mut Ctx<'_>, at: &str, def: &Spanned<L4Def>, answers: &[IpAddr]) -> L4Site {
    let d = def.get_ref();
    let api = cx.endpoint(at, d.api.as_ref(), d.token_file.as_ref(), DEFAULT_API);
    let mut services = BTreeMap::new();
    for (i, s) in d.services.iter().enumerate() {
        let sat = format!("{at}.services[{i}]");
        let mut body = s.get_ref().clone();
        let Some(raw) = body.remove("vip") else {
            cx.err(s.span(), format!("{sat}.vip: missing"));
            continue;
        };
        let Some(raw) = raw.as_str() else {
            cx.err(
                s.span(),
                format!("{sat}.vip: must be a string like tcp:192.0.2.10:80"),
            );
            continue;
        };
        let vip: Vip = match raw.parse() {
            Ok(v) => v,
            Err(e) => {
                cx.err(s.span(), format!("{sat}.vip: {e}"));
                continue;
            }
        };
        if !answers.contains(&vip.addr.ip()) {
            cx.err(
                s.span(),
                format!(
                    "{sat}.vip: {} is not one of the datacenter's answer addresses (ipv4/ipv6), so no client is sent to it",
                    vip.addr.ip()
                ),
            );
        }
        match canonical(&vip, &to_json(&toml::Value::Table(body))) {
            Ok(spec) => {
                if services
                    .insert(vip.to_string(), L4Service { spec })
                    .is_some()
                {
                    cx.err(s.span(), format!("{sat}.vip: {vip} is declared twice"));
                }
            }
            Err(e) => cx.err(s.span(), format!("{sat}.{e}")),
        }
    }
    L4Site { api, services }
}

/// `body` checked by `boltz l4`'s own parser and written back the way it
/// reports a live service, without `version`.
pub fn canonical(vip: &Vip, body: &Value) -> Result<Value, String> {
    let mut body = body.clone();
    if let Value::Object(o) = &mut body {
        o.insert("version".into(), Value::from(1));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let spec = boltz_l4::parse_spec(vip, &bytes).map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
    strip_live(&mut v);
    Ok(v)
}

/// Leaves what a live service view has beyond its spec out: the version,
/// the VIP and the slots.
pub fn strip_live(v: &mut Value) {
    if let Value::Object(o) = v {
        for k in ["version", "vip", "slots"] {
            o.remove(k);
        }
    }
}
