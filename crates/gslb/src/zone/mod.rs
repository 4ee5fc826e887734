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

mod compile;
pub mod model;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name, Record, RecordType};

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
    pub fn datacenter_index(&self, name: &str) -> Option<usize> {
        self.datacenters.iter().position(|d| d.name == name)
    }

    /// The origin as text, with the trailing dot.
    pub fn origin_str(&self) -> String {
        self.origin.to_string()
    }

    /// The zone cut at or above `name` (but below the apex), if any.
    pub fn delegation_for(&self, name: &LowerName) -> Option<&LowerName> {
        self.delegations.iter().find(|cut| cut.zone_of(name))
    }
}

/// Every zone the server is authoritative for.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    /// The zones, in load order.
    pub zones: Vec<Arc<Zone>>,
    by_origin: HashMap<LowerName, usize>,
    /// The fast path's wire index of these zones, built with them (once
    /// per load, off the query path).
    pub index: wire::FastIndex,
}

impl ZoneSet {
    /// Indexes `zones` (by origin, and the fast path's wire index).
    pub fn new(zones: Vec<Zone>) -> Self {
        let zones: Vec<Arc<Zone>> = zones.into_iter().map(Arc::new).collect();
        let by_origin = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.origin.clone(), i))
            .collect();
        let mut set = Self {
            zones,
            by_origin,
            index: wire::FastIndex::default(),
        };
        set.index = wire::FastIndex::build(&set);
        set
    }

    /// The zone with the longest origin that contains `name`.
    pub fn find(&self, name: &LowerName) -> Option<(usize, &Arc<Zone>)> {
        let mut n = name.clone();
        loop {
            if let Some(&i) = self.by_origin.get(&n) {
                return Some((i, &self.zones[i]));
            }
            if n.is_root() {
                return None;
            }
            n = n.base_name();
        }
    }

    /// The zone whose origin is `origin` (with or without the final dot).
    pub fn by_origin(&self, origin: &str) -> Option<&Arc<Zone>> {
        let name = Name::from_ascii(origin).ok()?;
        let mut name = LowerName::new(&name);
        if !name.is_fqdn() {
            name = LowerName::new(&Name::from(name).append_domain(&Name::root()).ok()?);
        }
        self.by_origin.get(&name).map(|&i| &self.zones[i])
    }

    /// Loads a zone file or every `*.toml` in a directory (sorted by name).
    pub fn load(path: &Path) -> Result<ZoneSet, Diagnostics> {
        let files = zone_files(path).map_err(|message| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message,
            }])
        })?;
        let mut diags = Vec::new();
        let mut zones: Vec<Zone> = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(Diagnostic {
                        file: file.clone(),
                        line: 1,
                        col: 1,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            match compile::compile(&file, &text) {
                Ok(zone) => {
                    if let Some(other) = zones.iter().find(|z| z.origin == zone.origin) {
                        diags.push(Diagnostic {
                            file: file.clone(),
                            line: 1,
                            col: 1,
                            message: format!(
                                "zone {} is already defined in {}",
                                zone.origin,
                                other.file.display()
                            ),
                        });
                    } else {
                        zones.push(zone);
                    }
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        Ok(ZoneSet::new(zones))
    }

    /// Parses one zone from text (tests and tools).
    pub fn parse_one(file: &Path, text: &str) -> Result<Zone, Diagnostics> {
        compile::compile(file, text).map_err(Diagnostics)
    }
}

/// The zone files under `path`: the file itself, or the sorted `*.toml`
/// files of a directory.
pub fn zone_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no *.toml zone files in this directory".into());
    }
    Ok(files)
}
