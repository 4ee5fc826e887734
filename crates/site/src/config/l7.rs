//! `[datacenters.NAME.l7]`: where the site's `boltz l7` listens, its pools
//! (each the `[pools.NAME]` table of `boltz l7`'s own file, which
//! `PUT /v1/pools/{name}` takes) and its routes. Checked by `boltz l7`'s
//! own types and validation, including routes to unknown pools.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{to_json, Ctx};
use crate::endpoint::Endpoint;
use boltz_l7::{from_json, valid_pool_name, validate_routes, PoolConfig, RouteConfig};

/// The default API of `boltz l7`.
pub const DEFAULT_API: &str = "unix:/run/boltz-l7.sock";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct L7Def {
    api: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pools: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    routes: Vec<Spanned<toml::Value>>,
}

/// The L7 part of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct L7Site {
    /// Where `boltz l7`'s API listens.
    pub api: Endpoint,
    /// The pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// The routes, in order.
    pub routes: Vec<RouteConfig>,
}

/// A table as `T` by `boltz l7`'s own reading of its API bodies.
fn typed<T: serde::de::DeserializeOwned>(v: &toml::Value) -> Result<T, String> {
    from_json(to_json(v))
}

pub(super) fn l7(cx: &mut Ctx<'_>, at: &str, def: &Spanned<L7Def>) -> L7Site {
    let d = def.get_ref();
    let api = cx.endpoint(at, d.api.as_ref(), d.token_file.as_ref(), DEFAULT_API);
    let mut pools = BTreeMap::new();
    // Routes are checked against every declared name, even one whose
    // table is broken (reported once, not again per route).
    let names: Vec<&str> = d.pools.keys().map(|n| n.get_ref().as_str()).collect();
    for (name, p) in &d.pools {
        let n = name.get_ref();
        let pat = format!("{at}.pools.{n}");
        if !valid_pool_name(n) {
            cx.err(
                name.span(),
                format!("{pat}: a pool name is letters, digits, '-', '_' and '.', up to 64"),
            );
        }
        match typed::<PoolConfig>(p.get_ref()) {
            Ok(cfg) => {
                for m in cfg.validate(&pat) {
                    cx.err(p.span(), m);
                }
                pools.insert(n.clone(), cfg);
            }
            Err(e) => cx.err(p.span(), format!("{pat}.{e}")),
        }
    }
    let mut routes = Vec::new();
    let mut spans = Vec::new();
    for (i, r) in d.routes.iter().enumerate() {
        match typed::<RouteConfig>(r.get_ref()) {
            Ok(cfg) => {
                routes.push(cfg);
                spans.push(r.span());
            }
            Err(e) => cx.err(r.span(), format!("{at}.routes[{i}].{e}")),
        }
    }
    for m in validate_routes(&routes, |p| names.contains(&p)) {
        // The route's index leads the message: `routes[2].pool: ...`.
        let i: Option<usize> = m
            .strip_prefix("routes[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse().ok());
        let span = i
            .and_then(|i| spans.get(i).cloned())
            .unwrap_or_else(|| def.span());
        cx.err(span, format!("{at}.{m}"));
    }
    L7Site { api, pools, routes }
}
