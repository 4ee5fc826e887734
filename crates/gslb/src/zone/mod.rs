//! Zones: the typed, validated, compiled form of `zones/*.toml`.
//!
//! Loading is all or nothing: a directory of zone files either compiles into a
//! complete [`ZoneSet`] or yields every problem as a [`Diagnostic`]
//! (`file:line:col: message`). The server swaps a new set in atomically, so a
//! broken edit never replaces zones that are serving.
//!
//! The compiled form is built for the query path: names are lower-cased
//! [`LowerName`] keys, static RRsets are ready [`Record`]s, and each steered
//! name carries the indices of its candidate datacenters and a precomputed
//! hash for the sticky draw.
//!
//! Datacenters may be declared once for every zone, in a `datacenters.toml`
//! beside the zone files; a zone gets copies of the shared DCs it names.
//!
//! This file holds the compiled types ([`Zone`] and its parts); `set` the
//! [`ZoneSet`] and loading a directory, `model` the files as written,
//! `compile` the checks from one to the other, `wire` the fast path's index.

mod compile;
pub mod model;
mod set;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name, Record, RecordType};

pub use self::set::{datacenters_file, zone_files, ZoneSet};
pub use boltz_core::diag::{Diagnostic, Diagnostics};

use crate::load::LoadConfig;
use crate::steer::{LatLon, PriceParams, Temperature, UnitVec};
use boltz_health::HealthConfig;

/// What to answer when every candidate DC of a steered name is unusable.
#[derive(Clone, Debug, PartialEq)]
pub enum AllDown {
    /// Answer with every candidate as if all were up (gdnsd's behaviour):
    /// a possibly-dead address beats no address.
    ServeAll,
    /// Answer SERVFAIL so resolvers try elsewhere.
    ServFail,
    /// Answer with these addresses instead.
    Fallback(Vec<IpAddr>),
}

/// Where to place a client whose address the geo database does not know.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnknownLocation {
    /// Ignore distance: choose by weight and price only.
    WeightOnly,
    /// Pretend the client is here.
    At(LatLon),
}

/// A zone's steering parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Steering {
    pub temperature: Temperature,
    pub distance_scale_km: f64,
    pub price: PriceParams,
    /// The demand lag is derived from the steered names' TTL (`auto`).
    pub auto_lag: bool,
    /// How often prices μ are updated from utilisation.
    pub load_interval: Duration,
    pub all_down: AllDown,
    pub unknown_location: UnknownLocation,
    /// Part of the draw's seed: bump it to reshuffle every cell on purpose.
    pub epoch: u64,
    /// TTL multiplier while any candidate DC is degraded.
    pub degraded_ttl_factor: f64,
}

/// A datacenter as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Datacenter {
    pub name: String,
    pub location: LatLon,
    pub weight: f64,
    /// Requests per second the DC can take; converts a feed's request rate to
    /// utilisation and weighs the DC in the global utilisation.
    pub capacity: f64,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub health: Option<HealthConfig>,
    pub load: Option<LoadConfig>,
    /// Stable hash of the name: the DC's identity in the draw.
    pub id: u64,
    /// `location` on the unit sphere, for fast distances.
    pub unit: UnitVec,
    /// `ln(weight)`, the degeneracy term of the logit.
    pub ln_weight: f64,
}

/// A steered A/AAAA name.
#[derive(Clone, Debug, PartialEq)]
pub struct Steered {
    /// Indices into [`Zone::datacenters`], in configured order.
    pub datacenters: Vec<usize>,
    pub ttl: u32,
    /// How many distinct DCs to answer with.
    pub answers: usize,
    /// Hash of the lower-case owner name, part of the draw's seed.
    pub name_hash: u64,
}

/// One name in a zone. Empty nodes exist for empty non-terminals, so that
/// their children make them NODATA rather than NXDOMAIN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// Static RRsets, at most one per type.
    pub rrsets: Vec<RRset>,
    pub steered: Option<Steered>,
}

impl Node {
    pub fn rrset(&self, rtype: RecordType) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.steered.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RRset {
    pub rtype: RecordType,
    pub records: Vec<Record>,
}

/// A compiled zone.
#[derive(Clone, Debug)]
pub struct Zone {
    pub origin: LowerName,
    pub file: PathBuf,
    pub ttl: u32,
    /// TTL given to the SOA in negative answers (RFC 2308: min of the SOA's
    /// TTL and its minimum field, unless configured).
    pub negative_ttl: u32,
    pub soa: Record,
    pub nodes: HashMap<LowerName, Node>,
    /// Names with NS records below the apex: zone cuts.
    pub delegations: Vec<LowerName>,
    pub datacenters: Vec<Datacenter>,
    pub steering: Steering,
}

impl Zone {
    /// A steered name of the zone (the first in name order), if any: what a
    /// tool or test driving one steered name asks.
    pub fn any_steered(&self) -> Option<&Steered> {
        self.nodes.values().find_map(|n| n.steered.as_ref())
    }

    pub fn datacenter_index(&self, name: &str) -> Option<usize> {
        self.datacenters.iter().position(|d| d.name == name)
    }

    /// The origin as text, with the trailing dot.
    pub fn origin_str(&self) -> String {
        self.origin.to_string()
    }

    /// RFC 4592: the wildcard that answers for `name`, a name the zone
    /// does not hold — `*.` and its closest encloser (the longest
    /// ancestor the zone holds, empty non-terminals included) — if the
    /// zone has it. Below an existing name nothing is synthesized: that
    /// name is the closest encloser, and its own `*` child decides.
    pub fn wildcard_for(&self, name: &LowerName) -> Option<&Node> {
        let mut n = Name::from(name.clone());
        while !n.is_root() {
            n = n.base_name();
            let ln = LowerName::new(&n);
            if !self.origin.zone_of(&ln) {
                return None;
            }
            if self.nodes.contains_key(&ln) {
                let w = Name::from_ascii("*").ok()?.append_domain(&n).ok()?;
                return self.nodes.get(&LowerName::new(&w));
            }
        }
        None
    }

    /// The zone cut at or above `name` (but below the apex), if any.
    pub fn delegation_for(&self, name: &LowerName) -> Option<&LowerName> {
        self.delegations.iter().find(|cut| cut.zone_of(name))
    }
}
