//! A datacenter's inside as `datacenters.toml` declares it: the L4
//! services (`[[datacenters.NAME.l4.services]]`), the L7 pools and routes
//! (`[datacenters.NAME.l7]`) and how the data plane's state becomes the
//! DC's report (`[datacenters.NAME.dataplane]`). The DC's outside
//! (location, addresses, probes) is the GSLB's to check; this module reads
//! only the capacity and the answer addresses, which the inside refers to.
//!
//! Every problem is reported at its `file:line:col`, all at once, and each
//! body is checked by the component's own parser (`boltz_l4::parse_spec`,
//! `boltz_l7::PoolConfig`), so what passes here is what the daemons accept.

pub(crate) mod l4;
mod l7;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::endpoint::Endpoint;
use boltz_core::diag::{Diagnostic, Diagnostics, Positions};

pub use l4::L4Service;
pub use l7::L7Site;

/// One datacenter's inside, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The DC's name.
    pub datacenter: String,
    /// Its declared capacity, requests/s.
    pub capacity: f64,
    /// Its local `boltz l4` and the services to push there.
    pub l4: Option<L4Site>,
    /// Its local `boltz l7` and the pools and routes to push there.
    pub l7: Option<L7Site>,
    /// How the data plane's state becomes the DC's report.
    pub dataplane: Dataplane,
}

/// The L4 part of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct L4Site {
    /// Where `boltz l4`'s API listens.
    pub api: Endpoint,
    /// The services, by VIP (`tcp:192.0.2.10:80`).
    pub services: BTreeMap<String, L4Service>,
}

/// `[datacenters.NAME.dataplane]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataplane {
    /// How often the report is made (on wall-clock multiples); match the
    /// zones' `load_interval`.
    pub interval: Duration,
    /// Below this share of healthy backend weight the DC is degraded.
    pub degraded_below: f64,
    /// Below this share the DC is down (it is down with none in any case).
    pub down_below: f64,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            interval: Duration::from_secs(5),
            degraded_below: 0.5,
            down_below: 0.0,
        }
    }
}

#[derive(Deserialize)]
struct FileDef {
    #[serde(default)]
    datacenters: BTreeMap<Spanned<String>, Spanned<DcDef>>,
}

/// The keys of a DC table this crate reads; the GSLB checks the rest.
#[derive(Deserialize)]
struct DcDef {
    capacity: Option<toml::Value>,
    #[serde(default)]
    ipv4: Vec<toml::Value>,
    #[serde(default)]
    ipv6: Vec<toml::Value>,
    l4: Option<Spanned<l4::L4Def>>,
    l7: Option<Spanned<l7::L7Def>>,
    dataplane: Option<Spanned<DataplaneDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataplaneDef {
    interval: Option<Spanned<String>>,
    degraded_below: Option<Spanned<f64>>,
    down_below: Option<Spanned<f64>>,
}

/// What every check reports to.
pub(crate) struct Ctx<'a> {
    pos: Positions<'a>,
    base: &'a Path,
    diags: Vec<Diagnostic>,
    /// The DC whose token files are read: the node's own (other sites'
    /// tokens are not on this machine).
    tokens_of: Option<&'a str>,
    /// The DC being read.
    dc: String,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let d = self.pos.at(span, msg);
        self.diags.push(d);
    }

    /// `api` and `token_file` of a component: `unix:PATH` (the default
    /// `default`) or `http://HOST:PORT`, with the token read now.
    pub(crate) fn endpoint(
        &mut self,
        at: &str,
        api: Option<&Spanned<String>>,
        token_file: Option<&Spanned<PathBuf>>,
        default: &str,
    ) -> Endpoint {
        let raw = api.map_or(default, |a| a.get_ref().as_str());
        let mut ep = match Endpoint::parse(raw) {
            Ok(e) => e,
            Err(e) => {
                if let Some(a) = api {
                    self.err(a.span(), format!("{at}.api: {e}"));
                }
                Endpoint::parse(default).expect("the default endpoint parses")
            }
        };
        if let Some(t) = token_file.filter(|_| self.tokens_of == Some(self.dc.as_str())) {
            let path = self.base.join(t.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => ep.set_token(s.trim().to_string()),
                Ok(_) => self.err(
                    t.span(),
                    format!("{at}.token_file: {} is empty", path.display()),
                ),
                Err(e) => self.err(
                    t.span(),
                    format!("{at}.token_file: cannot read {}: {e}", path.display()),
                ),
            }
        }
        ep
    }
}

/// Every DC's inside in `file` (for `boltz check`), or every problem.
/// Token files are not read: each is on its own site's machine.
pub fn check_file(file: &Path) -> Result<Vec<Site>, Diagnostics> {
    read_all(file, None)
}

/// Every DC's inside, reading the token files of DC `tokens_of`.
fn read_all(file: &Path, tokens_of: Option<&str>) -> Result<Vec<Site>, Diagnostics> {
    let text = read(file)?;
    let mut cx = Ctx {
        pos: Positions::new(file, &text),
        base: file.parent().unwrap_or(Path::new(".")),
        diags: Vec::new(),
        tokens_of,
        dc: String::new(),
    };
    let sites = parse(&mut cx, &text)
        .map(|f| {
            f.datacenters
                .iter()
                .map(|(name, def)| site(&mut cx, name.get_ref(), def))
                .collect()
        })
        .unwrap_or_default();
    if cx.diags.is_empty() {
        Ok(sites)
    } else {
        Err(Diagnostics(cx.diags))
    }
}

/// DC `dc`'s inside in `file`, its token files read: what `boltz serve
/// --datacenter` runs.
pub fn load(file: &Path, dc: &str) -> Result<Site, Diagnostics> {
    let sites = read_all(file, Some(dc))?;
    let whole = || {
        Diagnostics(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: String::new(),
        }])
    };
    let Some(site) = sites.into_iter().find(|s| s.datacenter == dc) else {
        let mut d = whole();
        d.0[0].message = format!("no datacenters.{dc} in this file");
        return Err(d);
    };
    if site.l4.is_none() && site.l7.is_none() {
        let mut d = whole();
        d.0[0].message =
            format!("datacenters.{dc} declares no l4 or l7: nothing for --datacenter to run");
        return Err(d);
    }
    Ok(site)
}

fn read(file: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(file).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read: {e}"),
        }])
    })
}

fn parse(cx: &mut Ctx<'_>, text: &str) -> Option<FileDef> {
    match toml::from_str::<FileDef>(text) {
        Ok(f) => Some(f),
        Err(e) => {
            let msg = e.message().to_string();
            match e.span() {
                Some(s) => cx.err(s, msg),
                None => cx.err(0..0, msg),
            }
            None
        }
    }
}

fn site(cx: &mut Ctx<'_>, name: &str, def: &Spanned<DcDef>) -> Site {
    cx.dc = name.to_string();
    let d = def.get_ref();
    let capacity = d
        .capacity
        .as_ref()
        .and_then(|c| c.as_float().or_else(|| c.as_integer().map(|i| i as f64)))
        .unwrap_or(1.0);
    let answers: Vec<IpAddr> = d
        .ipv4
        .iter()
        .chain(&d.ipv6)
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect();
    let at = format!("datacenters.{name}");
    let l4 =
        d.l4.as_ref()
            .map(|l| l4::l4(cx, &format!("{at}.l4"), l, &answers));
    let l7 = d.l7.as_ref().map(|l| l7::l7(cx, &format!("{at}.l7"), l));
    let dataplane = d
        .dataplane
        .as_ref()
        .map(|p| dataplane(cx, &format!("{at}.dataplane"), p.get_ref()))
        .unwrap_or_default();
    Site {
        datacenter: name.to_string(),
        capacity,
        l4,
        l7,
        dataplane,
    }
}

fn dataplane(cx: &mut Ctx<'_>, at: &str, d: &DataplaneDef) -> Dataplane {
    let mut out = Dataplane::default();
    if let Some(i) = &d.interval {
        match boltz_core::duration::parse_duration(i.get_ref()) {
            Ok(v) if v >= Duration::from_millis(100) => out.interval = v,
            Ok(_) => cx.err(i.span(), format!("{at}.interval: must be at least 100ms")),
            Err(e) => cx.err(i.span(), format!("{at}.interval: {e}")),
        }
    }
    for (v, field, slot) in [
        (&d.degraded_below, "degraded_below", &mut out.degraded_below),
        (&d.down_below, "down_below", &mut out.down_below),
    ] {
        if let Some(v) = v {
            let x = *v.get_ref();
            if (0.0..=1.0).contains(&x) {
                *slot = x;
            } else {
                cx.err(
                    v.span(),
                    format!("{at}.{field}: a share of backend weight in [0, 1], got {x}"),
                );
            }
        }
    }
    if out.down_below > out.degraded_below {
        if let Some(v) = &d.down_below {
            cx.err(
                v.span(),
                format!(
                    "{at}.down_below ({}) is above degraded_below ({})",
                    out.down_below, out.degraded_below
                ),
            );
        }
    }
    out
}

/// A TOML value as JSON, for the components' own parsers.
pub(crate) fn to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
