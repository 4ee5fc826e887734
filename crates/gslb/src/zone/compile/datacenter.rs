//! One `[datacenters.<name>]` table: name, location, weight, capacity,
//! addresses, and the health and load settings checked by their owners.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use toml::Spanned;

use super::Ctx;
use crate::steer::{hash_bytes, LatLon, UnitVec};
use crate::zone::model::DcDef;
use crate::zone::Datacenter;

pub(super) fn datacenter(
    cx: &mut Ctx<'_>,
    name: &Spanned<String>,
    def: &Spanned<DcDef>,
) -> Datacenter {
    let n = name.get_ref();
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        cx.err(
            name.span(),
            format!("datacenter name `{n}` must be letters, digits, `-` or `_`"),
        );
    }
    let d = def.get_ref();
    let location = dc_location(cx, n, &d.location);
    let weight = positive_or_one(cx, n, "weight", &d.weight, def.span());
    let capacity = positive_or_one(cx, n, "capacity", &d.capacity, def.span());
    let ipv4: Vec<Ipv4Addr> = addresses(cx, n, "ipv4", "an IPv4", &d.ipv4);
    let ipv6: Vec<Ipv6Addr> = addresses(cx, n, "ipv6", "an IPv6", &d.ipv6);
    if d.ipv4.is_empty() && d.ipv6.is_empty() {
        cx.err(
            name.span(),
            format!("datacenters.{n} has no addresses (set ipv4 and/or ipv6)"),
        );
    }
    if let Some(h) = &d.health {
        for m in h.get_ref().validate() {
            cx.err(h.span(), format!("datacenters.{n}.{m}"));
        }
    }
    if let Some(l) = &d.load {
        for m in l.get_ref().validate() {
            cx.err(l.span(), format!("datacenters.{n}.{m}"));
        }
    }
    // Kept even when invalid, so records naming it do not also report an
    // "unknown datacenter"; the zone is rejected by the diagnostics anyway.
    Datacenter {
        name: n.clone(),
        location,
        weight,
        capacity,
        ipv4,
        ipv6,
        health: d.health.as_ref().map(|h| h.get_ref().clone()),
        load: d.load.as_ref().map(|l| l.get_ref().clone()),
        id: hash_bytes(n.as_bytes()),
        unit: UnitVec::from_latlon(location),
        ln_weight: weight.ln(),
    }
}

/// `field` of DC `n`, 1 when left out; reported unless finite and > 0 (at
/// the DC's table when the value has no span of its own).
fn positive_or_one(
    cx: &mut Ctx<'_>,
    n: &str,
    field: &str,
    v: &Option<Spanned<f64>>,
    table: Range<usize>,
) -> f64 {
    let x = v.as_ref().map_or(1.0, |v| *v.get_ref());
    if !(x > 0.0 && x.is_finite()) {
        let span = v.as_ref().map_or(table, |v| v.span());
        cx.err(
            span,
            format!("datacenters.{n}.{field} must be > 0 (got {x})"),
        );
    }
    x
}

/// `location = [latitude, longitude]` of DC `n` (0, 0 after an error).
fn dc_location(cx: &mut Ctx<'_>, n: &str, loc: &Spanned<Vec<f64>>) -> LatLon {
    let [lat, lon] = loc.get_ref()[..] else {
        cx.err(
            loc.span(),
            format!("datacenters.{n}.location must be [latitude, longitude]"),
        );
        return LatLon { lat: 0.0, lon: 0.0 };
    };
    if !(-90.0..=90.0).contains(&lat) {
        cx.err(
            loc.span(),
            format!("datacenters.{n}.location: latitude {lat} is out of range -90..=90"),
        );
    }
    if !(-180.0..=180.0).contains(&lon) {
        cx.err(
            loc.span(),
            format!("datacenters.{n}.location: longitude {lon} is out of range -180..=180"),
        );
    }
    LatLon { lat, lon }
}

/// The addresses of list `field` of DC `n`, each bad one reported as not
/// being `what` address.
fn addresses<A: std::str::FromStr>(
    cx: &mut Ctx<'_>,
    n: &str,
    field: &str,
    what: &str,
    list: &[Spanned<String>],
) -> Vec<A> {
    let mut out = Vec::new();
    for a in list {
        match a.get_ref().parse::<A>() {
            Ok(ip) => out.push(ip),
            Err(_) => cx.err(
                a.span(),
                format!(
                    "datacenters.{n}.{field}: `{}` is not {what} address",
                    a.get_ref()
                ),
            ),
        }
    }
    out
}
