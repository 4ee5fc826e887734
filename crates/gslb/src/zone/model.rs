//! The zone file and the shared `datacenters.toml` as written: serde types
//! that mirror the TOML one to one, with spans kept on every value a later
//! check may need to point at. No meaning is checked here; `compile` turns
//! these into a [`super::Zone`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::load::LoadConfig;
use boltz_health::HealthConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    pub origin: Spanned<String>,
    pub ttl: Option<Spanned<i64>>,
    /// TTL of negative answers (NXDOMAIN/NODATA); defaults to the SOA minimum.
    pub negative_ttl: Option<Spanned<i64>>,
    pub soa: Spanned<SoaDef>,
    pub ns: Spanned<Vec<Spanned<String>>>,
    pub steering: Option<Spanned<SteeringDef>>,
    /// The zone's own DCs; steered records may also name the shared ones.
    #[serde(default)]
    pub datacenters: BTreeMap<Spanned<String>, Spanned<DcDef>>,
    /// Owner → one record definition or an array of them (several types at
    /// one name). Kept as raw values so each element gets its own error.
    #[serde(default)]
    pub records: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// `datacenters.toml`: the DCs any zone beside it may name, declared once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatacentersFile {
    #[serde(default)]
    pub datacenters: BTreeMap<Spanned<String>, Spanned<DcDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaDef {
    pub mname: Spanned<String>,
    pub rname: Spanned<String>,
    pub serial: Spanned<i64>,
    pub refresh: Option<Spanned<i64>>,
    pub retry: Option<Spanned<i64>>,
    pub expire: Option<Spanned<i64>>,
    pub minimum: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteeringDef {
    /// `"auto"` or a number.
    pub temperature: Option<Spanned<toml::Value>>,
    pub temperature_min: Option<Spanned<f64>>,
    pub temperature_max: Option<Spanned<f64>>,
    pub distance_scale_km: Option<Spanned<f64>>,
    pub target_utilisation: Option<Spanned<f64>>,
    pub price_step: Option<Spanned<f64>>,
    pub price_max: Option<Spanned<f64>>,
    pub load_interval: Option<Spanned<String>>,
    /// `"serve-all"`, `"servfail"` or `{ fallback = [addresses] }`.
    pub all_down: Option<Spanned<toml::Value>>,
    /// `"weight"` or `[lat, lon]`.
    pub unknown_location: Option<Spanned<toml::Value>>,
    pub epoch: Option<Spanned<i64>>,
    pub degraded_ttl_factor: Option<Spanned<f64>>,
    /// `"balance"` or `"step"`.
    pub controller: Option<Spanned<String>>,
    /// `"auto"` or a whole number of load intervals.
    pub demand_lag: Option<Spanned<toml::Value>>,
    /// A duration: how long a returning DC ramps its target.
    pub slow_start: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcDef {
    pub location: Spanned<Vec<f64>>,
    pub weight: Option<Spanned<f64>>,
    pub capacity: Option<Spanned<f64>>,
    #[serde(default)]
    pub ipv4: Vec<Spanned<String>>,
    #[serde(default)]
    pub ipv6: Vec<Spanned<String>>,
    pub health: Option<Spanned<HealthConfig>>,
    pub load: Option<Spanned<LoadConfig>>,
    /// The DC's inside (read by `boltz-site`, not by the GSLB): accepted
    /// in `datacenters.toml` only, never interpreted here.
    pub l4: Option<Spanned<toml::Value>>,
    pub l7: Option<Spanned<toml::Value>>,
    pub dataplane: Option<Spanned<toml::Value>>,
}

/// One record definition. Static types use `values` (or `value`); a
/// `steered` record uses `datacenters` and `answers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDef {
    #[serde(rename = "type")]
    pub rtype: String,
    pub values: Option<Vec<String>>,
    pub value: Option<String>,
    pub ttl: Option<i64>,
    pub datacenters: Option<Vec<String>>,
    pub answers: Option<i64>,
}
