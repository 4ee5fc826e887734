//! From [`ZoneFile`] to [`Zone`]: every semantic check of a zone file, each
//! failure reported at the span of the value it is about. Checks keep going
//! after an error so one run of `boltz check` lists every problem.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::rdata::{CNAME, MX, NS, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use serde::Deserialize;
use toml::Spanned;

use super::model::{DcDef, RecordDef, SteeringDef, ZoneFile};
use super::{AllDown, Datacenter, Node, RRset, Steered, Steering, UnknownLocation, Zone};
use crate::steer::{hash_bytes, LatLon, PriceParams, Temperature, UnitVec};
use boltz_core::diag::{Diagnostic, Positions};

/// RFC 2181 §8: TTLs are 31-bit.
const MAX_TTL: i64 = 2_147_483_647;

struct Ctx<'a> {
    pos: Positions<'a>,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let d = self.pos.at(span, msg);
        self.diags.push(d);
    }

    fn ttl(&mut self, v: &Spanned<i64>, what: &str) -> u32 {
        let t = *v.get_ref();
        if !(0..=MAX_TTL).contains(&t) {
            self.err(
                v.span(),
                format!("{what} {t} is out of range 0..={MAX_TTL}"),
            );
            return 0;
        }
        t as u32
    }
}

pub(super) fn compile(file: &Path, text: &str) -> Result<Zone, Vec<Diagnostic>> {
    let mut cx = Ctx {
        pos: Positions::new(file, text),
        diags: Vec::new(),
    };
    let zf: ZoneFile = match toml::from_str(text) {
        Ok(z) => z,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.err(span, e.message().trim().to_string());
            return Err(cx.diags);
        }
    };

    let origin = match parse_absolute(zf.origin.get_ref()) {
        Ok(n) => n,
        Err(m) => {
            cx.err(zf.origin.span(), format!("origin: {m}"));
            // Without an origin no name can be checked.
            return Err(cx.diags);
        }
    };

    let ttl = zf.ttl.as_ref().map_or(300, |t| cx.ttl(t, "ttl"));
    let soa_def = zf.soa.get_ref();
    let mut soa_num = |v: &Option<Spanned<i64>>, default: i64, what: &str| -> u32 {
        match v {
            Some(s) => cx.ttl(s, what),
            None => default as u32,
        }
    };
    let refresh = soa_num(&soa_def.refresh, 7200, "soa.refresh");
    let retry = soa_num(&soa_def.retry, 3600, "soa.retry");
    let expire = soa_num(&soa_def.expire, 1_209_600, "soa.expire");
    let minimum = soa_num(&soa_def.minimum, 300, "soa.minimum");
    let serial = *soa_def.serial.get_ref();
    if !(0..=i64::from(u32::MAX)).contains(&serial) {
        cx.err(
            soa_def.serial.span(),
            format!("soa.serial {serial} is not a 32-bit unsigned number"),
        );
    }
    let mname = name_or_err(&mut cx, &soa_def.mname, &origin, "soa.mname");
    let rname = name_or_err(&mut cx, &soa_def.rname, &origin, "soa.rname");
    let negative_ttl = match &zf.negative_ttl {
        Some(t) => cx.ttl(t, "negative_ttl"),
        None => minimum.min(ttl),
    };
    let soa = Record::from_rdata(
        origin.clone(),
        ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            serial as u32,
            refresh as i32,
            retry as i32,
            expire as i32,
            minimum,
        )),
    );

    let mut nodes: HashMap<LowerName, Node> = HashMap::new();
    let apex = nodes.entry(LowerName::new(&origin)).or_default();
    apex.rrsets.push(RRset {
        rtype: RecordType::SOA,
        records: vec![soa.clone()],
    });
    if zf.ns.get_ref().is_empty() {
        cx.err(zf.ns.span(), "ns: a zone needs at least one name server");
    }
    let mut apex_ns = Vec::new();
    for ns in zf.ns.get_ref() {
        let n = name_or_err(&mut cx, ns, &origin, "ns");
        apex_ns.push(Record::from_rdata(origin.clone(), ttl, RData::NS(NS(n))));
    }
    nodes
        .get_mut(&LowerName::new(&origin))
        .expect("apex inserted above")
        .rrsets
        .push(RRset {
            rtype: RecordType::NS,
            records: apex_ns,
        });

    let steering = steering(&mut cx, zf.steering.as_ref());

    let mut datacenters = Vec::new();
    for (name, def) in &zf.datacenters {
        datacenters.push(datacenter(&mut cx, name, def));
    }
    if let AllDown::Fallback(addrs) = &steering.all_down {
        if addrs.is_empty() {
            if let Some(span) = zf
                .steering
                .as_ref()
                .and_then(|s| s.get_ref().all_down.as_ref())
                .map(|a| a.span())
            {
                cx.err(
                    span,
                    "steering.all_down: fallback needs at least one address",
                );
            }
        }
    }

    // Owner (lower case) → where it was first written, to report duplicates
    // written with a different spelling ("www" vs "WWW" vs "www.example.com.").
    let mut seen: HashMap<(LowerName, RecordType), Range<usize>> = HashMap::new();
    let mut delegations: BTreeSet<LowerName> = BTreeSet::new();
    let mut spans: HashMap<LowerName, Range<usize>> = HashMap::new();
    for (owner, value) in &zf.records {
        let span = owner.span();
        let name = match parse_owner(owner.get_ref(), &origin) {
            Ok(n) => n,
            Err(m) => {
                cx.err(span, format!("record name `{}`: {m}", owner.get_ref()));
                continue;
            }
        };
        let lname = LowerName::new(&name);
        spans.entry(lname.clone()).or_insert(span.clone());
        let defs: Vec<&toml::Value> = match value.get_ref() {
            toml::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        if defs.is_empty() {
            cx.err(
                value.span(),
                format!("`{}`: empty list of records", owner.get_ref()),
            );
        }
        for raw in defs {
            let def = match RecordDef::deserialize(raw.clone()) {
                Ok(d) => d,
                Err(e) => {
                    cx.err(
                        value.span(),
                        format!("`{}`: {}", owner.get_ref(), e.message().trim()),
                    );
                    continue;
                }
            };
            let Some(rtype) = record_type(&def.rtype) else {
                cx.err(
                    value.span(),
                    format!(
                        "`{}`: unknown record type `{}` (expected steered, A, AAAA, CNAME, MX, TXT, SRV, CAA or NS)",
                        owner.get_ref(),
                        def.rtype
                    ),
                );
                continue;
            };
            let key_type = rtype.unwrap_or(RecordType::A);
            if let Some(first) = seen.get(&(lname.clone(), key_type)) {
                let (l, c) = cx.pos.line_col(first.start);
                let what = if rtype.is_none() {
                    "steered".to_string()
                } else {
                    key_type.to_string()
                };
                cx.err(
                    span.clone(),
                    format!("duplicate {what} records for `{name}` (first defined at {l}:{c})"),
                );
                continue;
            }
            seen.insert((lname.clone(), key_type), span.clone());
            let node = nodes.entry(lname.clone()).or_default();
            let rec_ttl = match def.ttl {
                Some(t) => cx.ttl(&Spanned::new(value.span(), t), "ttl"),
                None => ttl,
            };
            match rtype {
                None => {
                    if let Some(s) = steered(
                        &mut cx,
                        value.span(),
                        owner.get_ref(),
                        &def,
                        &datacenters,
                        &lname,
                        rec_ttl,
                    ) {
                        node.steered = Some(s);
                    }
                }
                Some(rt) => {
                    if def.datacenters.is_some() || def.answers.is_some() {
                        cx.err(
                            value.span(),
                            format!(
                                "`{}`: `datacenters`/`answers` only apply to type = \"steered\"",
                                owner.get_ref()
                            ),
                        );
                    }
                    let values: Vec<String> = match (&def.values, &def.value) {
                        (Some(v), None) => v.clone(),
                        (None, Some(v)) => vec![v.clone()],
                        (Some(_), Some(_)) => {
                            cx.err(
                                value.span(),
                                format!(
                                    "`{}`: give `values` or `value`, not both",
                                    owner.get_ref()
                                ),
                            );
                            continue;
                        }
                        (None, None) => {
                            cx.err(
                                value.span(),
                                format!("`{}`: {rt} record needs `values`", owner.get_ref()),
                            );
                            continue;
                        }
                    };
                    if values.is_empty() {
                        cx.err(
                            value.span(),
                            format!("`{}`: {rt} record has no values", owner.get_ref()),
                        );
                        continue;
                    }
                    if rt == RecordType::NS && name == origin {
                        cx.err(
                            value.span(),
                            "apex NS records are set by the top-level `ns` list",
                        );
                        continue;
                    }
                    if rt == RecordType::CNAME && values.len() != 1 {
                        cx.err(
                            value.span(),
                            format!("`{}`: a CNAME has exactly one target", owner.get_ref()),
                        );
                        continue;
                    }
                    let mut records = Vec::with_capacity(values.len());
                    for v in &values {
                        match rdata(rt, v, &origin) {
                            Ok(rd) => records.push(Record::from_rdata(name.clone(), rec_ttl, rd)),
                            Err(m) => cx.err(
                                value.span(),
                                format!("`{}`: {rt} value `{v}`: {m}", owner.get_ref()),
                            ),
                        }
                    }
                    if rt == RecordType::NS {
                        delegations.insert(lname.clone());
                    }
                    node.rrsets.push(RRset { rtype: rt, records });
                }
            }
        }
    }

    // Node-level rules that need every record of a name.
    let mut owners: Vec<&LowerName> = nodes.keys().collect();
    owners.sort();
    for owner in owners {
        let node = &nodes[owner];
        let span = spans.get(owner).cloned().unwrap_or(0..0);
        let has_cname = node.rrset(RecordType::CNAME).is_some();
        let others = node
            .rrsets
            .iter()
            .filter(|r| r.rtype != RecordType::CNAME)
            .count()
            + node.steered.is_some() as usize;
        if has_cname && others > 0 {
            if *owner == LowerName::new(&origin) {
                cx.err(
                    span.clone(),
                    "a CNAME cannot be at the zone apex (it has SOA and NS)",
                );
            } else {
                cx.err(
                    span.clone(),
                    format!("CNAME at `{owner}` cannot coexist with other data"),
                );
            }
        }
        if node.steered.is_some()
            && (node.rrset(RecordType::A).is_some() || node.rrset(RecordType::AAAA).is_some())
        {
            cx.err(
                span.clone(),
                format!("`{owner}` is steered and also has static A/AAAA records"),
            );
        }
        // Below a zone cut only glue (A/AAAA) may exist; at the cut only NS.
        for cut in &delegations {
            if cut.zone_of(owner) {
                let at_cut = owner == cut;
                let bad = node.steered.is_some()
                    || node.rrsets.iter().any(|r| {
                        if at_cut {
                            r.rtype != RecordType::NS
                        } else {
                            !matches!(r.rtype, RecordType::A | RecordType::AAAA)
                        }
                    });
                if bad {
                    cx.err(
                        span.clone(),
                        format!("`{owner}` is at or below the delegation `{cut}`: only NS at the cut and A/AAAA glue below it are allowed"),
                    );
                }
            }
        }
    }

    // Empty non-terminals: ancestors of every owner, up to the apex.
    let origin_l = LowerName::new(&origin);
    let owners: Vec<LowerName> = nodes.keys().cloned().collect();
    for owner in owners {
        let mut n = owner;
        while n != origin_l && !n.is_root() {
            n = n.base_name();
            nodes.entry(n.clone()).or_default();
        }
    }

    if !cx.diags.is_empty() {
        // Sorted by position so the output reads top to bottom.
        cx.diags.sort_by_key(|d| (d.line, d.col));
        return Err(cx.diags);
    }
    Ok(Zone {
        origin: origin_l,
        file: file.to_path_buf(),
        ttl,
        negative_ttl,
        soa,
        nodes,
        delegations: delegations.into_iter().collect(),
        datacenters,
        steering,
    })
}

/// `None` for "steered", `Some(type)` for static types we serve.
fn record_type(s: &str) -> Option<Option<RecordType>> {
    let t = match s.to_ascii_uppercase().as_str() {
        "STEERED" => return Some(None),
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "CNAME" => RecordType::CNAME,
        "MX" => RecordType::MX,
        "TXT" => RecordType::TXT,
        "SRV" => RecordType::SRV,
        "CAA" => RecordType::CAA,
        "NS" => RecordType::NS,
        _ => return None,
    };
    Some(Some(t))
}

fn parse_absolute(s: &str) -> Result<Name, String> {
    if !s.ends_with('.') {
        return Err(format!("`{s}` must be absolute (end with a dot)"));
    }
    let n = Name::from_ascii(s).map_err(|e| e.to_string())?;
    Ok(n.to_lowercase())
}

/// A name in record data: `@` is the origin, a trailing dot makes it
/// absolute, anything else is relative to the origin (zone-file rules).
pub(super) fn parse_name(s: &str, origin: &Name) -> Result<Name, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty name".into());
    }
    if s == "@" {
        return Ok(origin.clone());
    }
    let n = Name::from_ascii(s).map_err(|e| e.to_string())?;
    if s.ends_with('.') {
        Ok(n)
    } else {
        n.append_domain(origin).map_err(|e| e.to_string())
    }
}

fn parse_owner(s: &str, origin: &Name) -> Result<Name, String> {
    if s.contains('*') {
        return Err("wildcard names are not supported".into());
    }
    let n = parse_name(s, origin)?;
    if !origin.zone_of(&n) {
        return Err(format!("is outside the zone {origin}"));
    }
    Ok(n)
}

fn name_or_err(cx: &mut Ctx<'_>, v: &Spanned<String>, origin: &Name, what: &str) -> Name {
    match parse_name(v.get_ref(), origin) {
        Ok(n) => n,
        Err(m) => {
            cx.err(v.span(), format!("{what}: `{}`: {m}", v.get_ref()));
            Name::root()
        }
    }
}

fn rdata(rt: RecordType, v: &str, origin: &Name) -> Result<RData, String> {
    let fields: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str, what: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{what} `{s}` is not a number 0..=65535"))
    };
    Ok(match rt {
        RecordType::A => RData::A(
            v.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| e.to_string())?
                .into(),
        ),
        RecordType::AAAA => RData::AAAA(
            v.trim()
                .parse::<Ipv6Addr>()
                .map_err(|e| e.to_string())?
                .into(),
        ),
        RecordType::CNAME => RData::CNAME(CNAME(parse_name(v, origin)?)),
        RecordType::NS => RData::NS(NS(parse_name(v, origin)?)),
        RecordType::MX => {
            let [pref, exchange] = fields[..] else {
                return Err("expected `preference exchange`".into());
            };
            RData::MX(MX::new(
                num(pref, "preference")?,
                parse_name(exchange, origin)?,
            ))
        }
        RecordType::SRV => {
            let [prio, weight, port, target] = fields[..] else {
                return Err("expected `priority weight port target`".into());
            };
            RData::SRV(SRV::new(
                num(prio, "priority")?,
                num(weight, "weight")?,
                num(port, "port")?,
                parse_name(target, origin)?,
            ))
        }
        RecordType::TXT => {
            // One value is one logical string; DNS character-strings hold
            // 255 bytes, so longer text is split the way SPF/DKIM expect.
            let chunks: Vec<String> = v
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            RData::TXT(TXT::new(if chunks.is_empty() {
                vec![String::new()]
            } else {
                chunks
            }))
        }
        RecordType::CAA => RData::try_from_str(RecordType::CAA, v).map_err(|e| e.to_string())?,
        _ => return Err(format!("type {rt} is not supported")),
    })
}

fn steered(
    cx: &mut Ctx<'_>,
    span: Range<usize>,
    owner: &str,
    def: &RecordDef,
    dcs: &[Datacenter],
    name: &LowerName,
    ttl: u32,
) -> Option<Steered> {
    if def.values.is_some() || def.value.is_some() {
        cx.err(
            span.clone(),
            format!("`{owner}`: a steered record takes `datacenters`, not `values`"),
        );
    }
    let Some(names) = &def.datacenters else {
        cx.err(
            span,
            format!("`{owner}`: a steered record needs `datacenters`"),
        );
        return None;
    };
    if names.is_empty() {
        cx.err(span, format!("`{owner}`: `datacenters` is empty"));
        return None;
    }
    let mut idx = Vec::new();
    let mut ok = true;
    for n in names {
        match dcs.iter().position(|d| &d.name == n) {
            Some(i) if idx.contains(&i) => {
                cx.err(
                    span.clone(),
                    format!("`{owner}`: datacenter `{n}` is listed twice"),
                );
                ok = false;
            }
            Some(i) => idx.push(i),
            None => {
                cx.err(span.clone(), format!("`{owner}`: unknown datacenter `{n}`"));
                ok = false;
            }
        }
    }
    let answers = def.answers.unwrap_or(1);
    if answers < 1 || answers as usize > names.len().max(1) || answers > 8 {
        cx.err(
            span,
            format!("`{owner}`: answers = {answers} must be between 1 and the number of datacenters (at most 8)"),
        );
        ok = false;
    }
    ok.then(|| Steered {
        datacenters: idx,
        ttl,
        answers: answers as usize,
        name_hash: hash_bytes(name.to_string().as_bytes()),
    })
}

fn datacenter(cx: &mut Ctx<'_>, name: &Spanned<String>, def: &Spanned<DcDef>) -> Datacenter {
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
    let loc = d.location.get_ref();
    let mut location = LatLon { lat: 0.0, lon: 0.0 };
    if let [lat, lon] = loc[..] {
        if !(-90.0..=90.0).contains(&lat) {
            cx.err(
                d.location.span(),
                format!("datacenters.{n}.location: latitude {lat} is out of range -90..=90"),
            );
        }
        if !(-180.0..=180.0).contains(&lon) {
            cx.err(
                d.location.span(),
                format!("datacenters.{n}.location: longitude {lon} is out of range -180..=180"),
            );
        }
        location = LatLon { lat, lon };
    } else {
        cx.err(
            d.location.span(),
            format!("datacenters.{n}.location must be [latitude, longitude]"),
        );
    }
    let weight = d.weight.as_ref().map_or(1.0, |w| *w.get_ref());
    if !(weight > 0.0 && weight.is_finite()) {
        let span = d.weight.as_ref().map_or(def.span(), |w| w.span());
        cx.err(
            span,
            format!("datacenters.{n}.weight must be > 0 (got {weight})"),
        );
    }
    let capacity = d.capacity.as_ref().map_or(1.0, |c| *c.get_ref());
    if !(capacity > 0.0 && capacity.is_finite()) {
        let span = d.capacity.as_ref().map_or(def.span(), |c| c.span());
        cx.err(
            span,
            format!("datacenters.{n}.capacity must be > 0 (got {capacity})"),
        );
    }
    let mut ipv4 = Vec::new();
    for a in &d.ipv4 {
        match a.get_ref().parse::<Ipv4Addr>() {
            Ok(ip) => ipv4.push(ip),
            Err(_) => cx.err(
                a.span(),
                format!(
                    "datacenters.{n}.ipv4: `{}` is not an IPv4 address",
                    a.get_ref()
                ),
            ),
        }
    }
    let mut ipv6 = Vec::new();
    for a in &d.ipv6 {
        match a.get_ref().parse::<Ipv6Addr>() {
            Ok(ip) => ipv6.push(ip),
            Err(_) => cx.err(
                a.span(),
                format!(
                    "datacenters.{n}.ipv6: `{}` is not an IPv6 address",
                    a.get_ref()
                ),
            ),
        }
    }
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

fn steering(cx: &mut Ctx<'_>, def: Option<&Spanned<SteeringDef>>) -> Steering {
    let mut s = Steering {
        temperature: Temperature::Auto {
            min: 0.05,
            max: 1.0,
        },
        distance_scale_km: 2000.0,
        price: PriceParams {
            target_utilisation: 0.85,
            step: 0.5,
            max: 20.0,
        },
        load_interval: Duration::from_secs(5),
        all_down: AllDown::ServeAll,
        unknown_location: UnknownLocation::WeightOnly,
        epoch: 0,
        degraded_ttl_factor: 0.5,
    };
    let Some(def) = def else { return s };
    let d = def.get_ref();
    let mut positive = |v: &Option<Spanned<f64>>, what: &str, allow_zero: bool, out: &mut f64| {
        if let Some(v) = v {
            let x = *v.get_ref();
            if !x.is_finite() || x < 0.0 || (!allow_zero && x == 0.0) {
                let bound = if allow_zero { "≥ 0" } else { "> 0" };
                cx.err(
                    v.span(),
                    format!("steering.{what} must be {bound} (got {x})"),
                );
            } else {
                *out = x;
            }
        }
    };
    let (mut tmin, mut tmax) = (0.05, 1.0);
    positive(&d.temperature_min, "temperature_min", false, &mut tmin);
    positive(&d.temperature_max, "temperature_max", false, &mut tmax);
    positive(
        &d.distance_scale_km,
        "distance_scale_km",
        false,
        &mut s.distance_scale_km,
    );
    positive(
        &d.target_utilisation,
        "target_utilisation",
        false,
        &mut s.price.target_utilisation,
    );
    positive(&d.price_step, "price_step", true, &mut s.price.step);
    positive(&d.price_max, "price_max", true, &mut s.price.max);
    positive(
        &d.degraded_ttl_factor,
        "degraded_ttl_factor",
        false,
        &mut s.degraded_ttl_factor,
    );
    if s.degraded_ttl_factor > 1.0 {
        if let Some(v) = &d.degraded_ttl_factor {
            cx.err(v.span(), "steering.degraded_ttl_factor must be in (0, 1]");
        }
    }
    if tmin > tmax {
        if let Some(v) = &d.temperature_min {
            cx.err(
                v.span(),
                format!("steering.temperature_min {tmin} is above temperature_max {tmax}"),
            );
        }
    }
    s.temperature = Temperature::Auto {
        min: tmin,
        max: tmax,
    };
    if let Some(t) = &d.temperature {
        match t.get_ref() {
            toml::Value::String(a) if a == "auto" => {}
            toml::Value::Float(x) if *x > 0.0 && x.is_finite() => {
                s.temperature = Temperature::Fixed(*x)
            }
            toml::Value::Integer(x) if *x > 0 => s.temperature = Temperature::Fixed(*x as f64),
            other => cx.err(
                t.span(),
                format!("steering.temperature must be \"auto\" or a number > 0 (got {other})"),
            ),
        }
    }
    if let Some(li) = &d.load_interval {
        match boltz_core::duration::parse_duration(li.get_ref()) {
            Ok(v) if v >= Duration::from_millis(10) => s.load_interval = v,
            Ok(_) => cx.err(li.span(), "steering.load_interval must be at least 10ms"),
            Err(m) => cx.err(li.span(), format!("steering.load_interval: {m}")),
        }
    }
    if let Some(e) = &d.epoch {
        if *e.get_ref() < 0 {
            cx.err(e.span(), "steering.epoch must be ≥ 0");
        } else {
            s.epoch = *e.get_ref() as u64;
        }
    }
    if let Some(a) = &d.all_down {
        match a.get_ref() {
            toml::Value::String(v) if v == "serve-all" => s.all_down = AllDown::ServeAll,
            toml::Value::String(v) if v == "servfail" => s.all_down = AllDown::ServFail,
            toml::Value::Table(t) if t.len() == 1 && t.contains_key("fallback") => {
                let mut addrs = Vec::new();
                match &t["fallback"] {
                    toml::Value::Array(items) => {
                        for i in items {
                            match i.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                                Some(ip) => addrs.push(ip),
                                None => cx.err(a.span(), format!("steering.all_down.fallback: `{i}` is not an IP address")),
                            }
                        }
                    }
                    _ => cx.err(a.span(), "steering.all_down.fallback must be a list of addresses"),
                }
                s.all_down = AllDown::Fallback(addrs);
            }
            other => cx.err(
                a.span(),
                format!("steering.all_down must be \"serve-all\", \"servfail\" or {{ fallback = [...] }} (got {other})"),
            ),
        }
    }
    if let Some(u) = &d.unknown_location {
        match u.get_ref() {
            toml::Value::String(v) if v == "weight" => s.unknown_location = UnknownLocation::WeightOnly,
            toml::Value::Array(items) if items.len() == 2 => {
                let f = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
                match (f(&items[0]), f(&items[1])) {
                    (Some(lat), Some(lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {
                        s.unknown_location = UnknownLocation::At(LatLon { lat, lon })
                    }
                    _ => cx.err(u.span(), "steering.unknown_location must be [latitude, longitude] in range"),
                }
            }
            other => cx.err(
                u.span(),
                format!("steering.unknown_location must be \"weight\" or [latitude, longitude] (got {other})"),
            ),
        }
    }
    s
}
