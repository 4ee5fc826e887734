//! The steering decision for one steered name and one client cell: which
//! DCs answer, with which addresses and TTL. Shared by the DNS handler, the
//! API's explain and `boltz explain`, so the explanation is always the code
//! path that answered.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::world::{DcStatus, ZoneView};
use crate::steer::{self, distance_km, Candidate, LatLon};
use crate::zone::{AllDown, Datacenter, Steered, Zone};

/// Address family of the query (A or AAAA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Family {
    V4,
    V6,
}

/// How the answer came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Boltzmann draw among usable DCs.
    Steered,
    /// No candidate has an address of the family: NODATA.
    NoAddressFamily,
    /// Every candidate unusable; the zone's all-down policy answered.
    AllDownServeAll,
    AllDownFallback,
    AllDownServfail,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub mode: Mode,
    pub addrs: Vec<IpAddr>,
    pub ttl: u32,
    /// Indices (into `Zone::datacenters`) of the DCs answering, in drawn order.
    pub chosen: Vec<usize>,
}

/// One line of an explanation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplainRow {
    pub datacenter: String,
    pub distance_km: Option<f64>,
    pub distance_energy: f64,
    pub mu: f64,
    pub energy: f64,
    pub weight: f64,
    pub utilisation: f64,
    pub status: DcStatus,
    /// Has an address of the query's family.
    pub has_family: bool,
    pub usable: bool,
    pub probability: f64,
    /// 1-based place in the drawn order, if it answered.
    pub drawn: Option<usize>,
}

fn has_family(dc: &Datacenter, f: Family) -> bool {
    match f {
        Family::V4 => !dc.ipv4.is_empty(),
        Family::V6 => !dc.ipv6.is_empty(),
    }
}

fn push_addrs(dc: &Datacenter, f: Family, out: &mut Vec<IpAddr>) {
    match f {
        Family::V4 => out.extend(dc.ipv4.iter().map(|a| IpAddr::V4(*a))),
        Family::V6 => out.extend(dc.ipv6.iter().map(|a| IpAddr::V6(*a))),
    }
}

/// Decides the answer. `location` is `None` when the client's place is
/// unknown and the zone chose weight-only steering; `cell` is the hash of the
/// client's geo cell. With `rows`, every candidate's numbers are recorded.
pub fn decide(
    zone: &Zone,
    view: &ZoneView,
    st: &Steered,
    family: Family,
    location: Option<LatLon>,
    cell: u64,
    rows: Option<&mut Vec<ExplainRow>>,
) -> Decision {
    let scale = zone.steering.distance_scale_km;
    let t = view.temperature;
    let mut cands: Vec<Candidate> = Vec::with_capacity(st.datacenters.len());
    let mut idx: Vec<usize> = Vec::with_capacity(st.datacenters.len());
    let mut any_family = false;
    let mut degraded = false;
    for &i in &st.datacenters {
        let (dc, v) = (&zone.datacenters[i], &view.dcs[i]);
        degraded |= v.degraded();
        if !has_family(dc, family) {
            continue;
        }
        any_family = true;
        if !v.usable() {
            continue;
        }
        cands.push(Candidate {
            distance_km: location.map_or(0.0, |l| distance_km(l, dc.location)),
            weight: dc.weight,
            mu: v.mu,
            id: dc.id,
        });
        idx.push(i);
    }
    let ttl = if degraded && st.ttl > 0 {
        ((f64::from(st.ttl) * zone.steering.degraded_ttl_factor).round() as u32).max(1)
    } else {
        st.ttl
    };

    let mut addrs = Vec::new();
    let mut chosen = Vec::new();
    let mode = if !any_family {
        Mode::NoAddressFamily
    } else if cands.is_empty() {
        match &zone.steering.all_down {
            AllDown::ServeAll => {
                for &i in &st.datacenters {
                    if has_family(&zone.datacenters[i], family) {
                        push_addrs(&zone.datacenters[i], family, &mut addrs);
                        chosen.push(i);
                    }
                }
                Mode::AllDownServeAll
            }
            AllDown::ServFail => Mode::AllDownServfail,
            AllDown::Fallback(list) => {
                addrs.extend(
                    list.iter()
                        .filter(|a| a.is_ipv4() == (family == Family::V4)),
                );
                Mode::AllDownFallback
            }
        }
    } else {
        let seed = steer::draw_seed(cell, st.name_hash, zone.steering.epoch);
        let mut order = [0usize; 8];
        let n = steer::draw_into(seed, &cands, scale, t, &mut order[..st.answers]);
        for &k in &order[..n] {
            push_addrs(&zone.datacenters[idx[k]], family, &mut addrs);
            chosen.push(idx[k]);
        }
        Mode::Steered
    };

    if let Some(rows) = rows {
        let probs = steer::probabilities(&cands, scale, t);
        for &i in &st.datacenters {
            let (dc, v) = (&zone.datacenters[i], &view.dcs[i]);
            let d = location.map(|l| distance_km(l, dc.location));
            let de = d.unwrap_or(0.0) / scale;
            let k = idx.iter().position(|&j| j == i);
            rows.push(ExplainRow {
                datacenter: dc.name.clone(),
                distance_km: d,
                distance_energy: de,
                mu: v.mu,
                energy: de + v.mu,
                weight: dc.weight,
                utilisation: v.utilisation,
                status: v.status(),
                has_family: has_family(dc, family),
                usable: v.usable(),
                probability: k.map_or(0.0, |k| probs[k]),
                drawn: chosen.iter().position(|&c| c == i).map(|p| p + 1),
            });
        }
    }
    Decision {
        mode,
        addrs,
        ttl,
        chosen,
    }
}

/// Where a client is, as far as steering cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// The location the database gave, if any.
    pub geo: Option<LatLon>,
    /// The geo database's network containing the address: the cell. Every
    /// address in it gets the same answer, so its prefix is the ECS scope.
    pub cell: ipnet::IpNet,
    /// Hash of `cell`, the client part of the draw's seed.
    pub cell_hash: u64,
}

impl Placement {
    /// Looks `ip` up; without a database every client is in one cell, `/0`.
    pub fn of(geo: Option<&crate::geo::GeoDb>, ip: IpAddr) -> Placement {
        let ip = crate::geo::normalise_ip(ip);
        let (geo, cell) = match geo {
            Some(db) => {
                let hit = db.lookup(ip);
                (
                    hit.location.map(|l| LatLon {
                        lat: l.lat,
                        lon: l.lon,
                    }),
                    hit.network,
                )
            }
            None => (
                None,
                ipnet::IpNet::new(ecs_zero(ip), 0).expect("prefix 0 is valid"),
            ),
        };
        Placement {
            geo,
            cell,
            cell_hash: steer::cell_hash(cell.network(), cell.prefix_len()),
        }
    }

    /// The location steering uses, after the zone's rule for unknown clients.
    pub fn location_for(&self, zone: &Zone) -> Option<LatLon> {
        self.geo.or(match zone.steering.unknown_location {
            crate::zone::UnknownLocation::WeightOnly => None,
            crate::zone::UnknownLocation::At(l) => Some(l),
        })
    }
}

fn ecs_zero(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}
