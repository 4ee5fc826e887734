//! Explanations: "why did this client get this answer?" — every candidate
//! DC's distance, energy terms, weight, health (with what its feed says)
//! and probability, the drawn
//! order, the ECS scope and the TTL. Built from the same [`decide`] call the
//! DNS handler makes, against a live [`World`] (API) or a cold one built from
//! the zone files (offline `boltz explain`).

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name};
use serde::{Deserialize, Serialize};

use super::decide::{decide, ExplainRow, Family, Mode};
use super::placement::Placement;
use super::world::World;
use crate::geo::GeoDb;
use crate::load::FeedHealth;
use crate::steer::LatLon;

#[derive(Clone, Debug, Serialize, Deserialize)]
/// Why a client gets its answer: the inputs, every DC's energies and
/// probabilities, and the draw (`boltz explain`, `/v1/explain`).
pub struct Explanation {
    /// The steered name asked.
    pub name: String,
    /// The zone that holds it.
    pub zone: String,
    /// A or AAAA.
    pub qtype: String,
    /// The address located: the subnet's network if one was given.
    pub client: IpAddr,
    /// The ECS subnet given, if any.
    pub subnet: Option<String>,
    /// Where the client was located, if anywhere.
    pub location: Option<LatLon>,
    /// geoip, zone-default or unknown (weight-only).
    pub location_source: String,
    /// The geo cell; every address in it gets this answer.
    pub cell: String,
    /// The ECS scope prefix a response would carry.
    pub scope: u8,
    /// The zone's temperature T now.
    pub temperature: f64,
    /// Σload/Σcapacity of the zone.
    pub global_utilisation: f64,
    /// Distance that costs one unit of energy.
    pub distance_scale_km: f64,
    /// How the answer came about.
    pub mode: Mode,
    /// TTL of the answer.
    pub ttl: u32,
    /// The addresses answered, in order.
    pub answer: Vec<IpAddr>,
    /// The drawn DCs, best first.
    pub drawn: Vec<String>,
    /// One row per candidate DC.
    pub datacenters: Vec<ExplainRow>,
    /// Asked of a node that runs a site (`--datacenter`): its DC, latest
    /// report and components (the API's `site` status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<serde_json::Value>,
}

/// Explains the answer for `name` (steered) and `client`, optionally as if
/// a resolver sent ECS `subnet`.
pub fn explain(
    world: &World,
    geo: Option<&GeoDb>,
    name: &str,
    client: IpAddr,
    subnet: Option<ipnet::IpNet>,
    family: Family,
) -> Result<Explanation, String> {
    let mut n = Name::from_ascii(name).map_err(|e| format!("bad name `{name}`: {e}"))?;
    n.set_fqdn(true);
    let lname = LowerName::new(&n);
    let (zi, zone) = world
        .zones
        .find(&lname)
        .ok_or_else(|| format!("`{n}` is not in any zone served here"))?;
    let node = zone
        .nodes
        .get(&lname)
        .ok_or_else(|| format!("`{n}` does not exist in zone {}", zone.origin))?;
    let st = node.steered.as_ref().ok_or_else(|| {
        format!("`{n}` is not a steered name (static records answer it the same way everywhere)")
    })?;
    let addr = subnet.map_or(client, |s| s.network());
    let place = Placement::of(geo, addr);
    let location = place.location_for(zone);
    let location_source = match (place.geo, location) {
        (Some(_), _) => "geoip",
        (None, Some(_)) => "zone-default",
        (None, None) => "unknown (weight only)",
    };
    let view = &world.views[zi];
    let mut rows = Vec::new();
    let d = decide(
        zone,
        view,
        st,
        family,
        location,
        place.cell_hash,
        Some(&mut rows),
    );
    Ok(Explanation {
        name: n.to_string(),
        zone: zone.origin_str(),
        qtype: match family {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
        .into(),
        client: addr,
        subnet: subnet.map(|s| s.to_string()),
        location,
        location_source: location_source.into(),
        cell: place.cell.to_string(),
        scope: if subnet.is_some_and(|s| s.prefix_len() == 0) {
            0
        } else {
            place.cell.prefix_len()
        },
        temperature: view.temperature,
        global_utilisation: view.global_utilisation,
        distance_scale_km: zone.steering.distance_scale_km,
        mode: d.mode,
        ttl: d.ttl,
        answer: d.addresses(zone, st).collect(),
        drawn: d
            .chosen(zone, st)
            .map(|i| zone.datacenters[i].name.clone())
            .collect(),
        datacenters: rows,
        site: None,
    })
}

impl Explanation {
    /// The operator's table.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let loc = match self.location {
            Some(l) => format!("{:.2}, {:.2}", l.lat, l.lon),
            None => "unknown".into(),
        };
        let _ = writeln!(
            o,
            "{} {} for client {}{}",
            self.name,
            self.qtype,
            self.client,
            self.subnet
                .as_ref()
                .map_or(String::new(), |s| format!(" (subnet {s})"))
        );
        let _ = writeln!(
            o,
            "zone {}  location {loc} ({})  cell {}  scope /{}",
            self.zone, self.location_source, self.cell, self.scope
        );
        let _ = writeln!(
            o,
            "T = {:.4} (global utilisation {:.3})  distance scale {} km",
            self.temperature, self.global_utilisation, self.distance_scale_km
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<12} {:>9} {:>8} {:>7} {:>8} {:>6} {:>6} {:<8} {:>11} {:>5}",
            "datacenter",
            "km",
            "E_dist",
            "mu",
            "E",
            "weight",
            "util",
            "health",
            "probability",
            "drawn"
        );
        for r in &self.datacenters {
            let km = r.distance_km.map_or("-".to_string(), |d| format!("{d:.0}"));
            let status = if r.has_family {
                format!("{:?}", r.status).to_lowercase()
            } else {
                "no-addr".into()
            };
            let drawn = r.drawn.map_or(String::new(), |d| format!("#{d}"));
            let _ = writeln!(
                o,
                "{:<12} {:>9} {:>8.3} {:>7.3} {:>8.3} {:>6.2} {:>6.2} {:<8} {:>10.2}% {:>5}",
                r.datacenter,
                km,
                r.distance_energy,
                r.mu,
                r.energy,
                r.weight,
                r.utilisation,
                status,
                r.probability * 100.0,
                drawn
            );
        }
        let _ = writeln!(o);
        for r in &self.datacenters {
            let said = match r.feed_health {
                Some(FeedHealth::Down) => "excluded: its feed says down",
                Some(FeedHealth::Degraded) => "degraded by its feed (shorter TTL)",
                _ => continue,
            };
            let reason = r
                .feed_reason
                .as_deref()
                .map_or(String::new(), |why| format!(" ({why})"));
            let _ = writeln!(o, "{} {said}{reason}", r.datacenter);
        }
        if let Some(site) = &self.site {
            render_site(&mut o, site);
        }
        let answer: Vec<String> = self.answer.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            o,
            "mode {:?}  drawn [{}]  answer [{}]  ttl {}",
            self.mode,
            self.drawn.join(", "),
            answer.join(", "),
            self.ttl
        );
        o
    }
}

/// The lines about the answering node's own site: its report and each
/// component's reconcile state.
fn render_site(o: &mut String, site: &serde_json::Value) {
    use std::fmt::Write as _;
    let str_of = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string()
    };
    let r = &site["report"];
    let _ = writeln!(
        o,
        "site {}: report {} utilisation {:.3} capacity {:.0}{}",
        str_of(site, "datacenter"),
        str_of(r, "health"),
        r.get("utilisation").and_then(|x| x.as_f64()).unwrap_or(0.0),
        r.get("capacity").and_then(|x| x.as_f64()).unwrap_or(0.0),
        r.get("reason")
            .and_then(|x| x.as_str())
            .map_or(String::new(), |w| format!(" ({w})")),
    );
    for c in site["components"].as_array().into_iter().flatten() {
        let error = c
            .get("error")
            .and_then(|x| x.as_str())
            .map_or(String::new(), |e| format!(": {e}"));
        let _ = writeln!(
            o,
            "  {} {} {}{error}",
            str_of(c, "component"),
            str_of(c, "endpoint"),
            str_of(c, "state"),
        );
    }
}
