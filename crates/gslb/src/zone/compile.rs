//! From [`ZoneFile`] to [`Zone`]: every semantic check of a zone file, each
//! failure reported at the span of the value it is about. Checks keep going
//! after an error so one run of `boltz check` lists every problem.
//!
//! This file holds the zone's skeleton (origin, SOA, apex NS), the order of
//! the phases and the name rules; the tables have a file each:
//! [`steering`], [`datacenter`] and [`records`]; the shared
//! `datacenters.toml`, and how a zone's DCs join it, is [`shared`].

mod datacenter;
mod records;
mod shared;
mod steering;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use toml::Spanned;

pub(super) use self::shared::{shared, SharedDcs, DATACENTERS_FILE};

use self::records::{add_empty_non_terminals, node_rules, records, Records};
use self::steering::steering;
use super::model::ZoneFile;
use super::{Node, RRset, Zone};
use boltz_core::diag::{Diagnostic, Positions};

/// RFC 2181 §8: TTLs are 31-bit.
const MAX_TTL: i64 = 2_147_483_647;

/// What every check reports to: the positions behind spans, and the
/// diagnostics so far.
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

/// Checks and compiles one zone file, in phases: parse, origin, SOA and apex
/// NS, steering, datacenters, records, node rules, empty non-terminals.
/// Steered records may also name the DCs of `shared` (`datacenters.toml`).
pub(super) fn compile(
    file: &Path,
    text: &str,
    shared: Option<&SharedDcs>,
) -> Result<Zone, Vec<Diagnostic>> {
    let mut cx = Ctx {
        pos: Positions::new(file, text),
        diags: Vec::new(),
    };
    let Some(zf) = parse_toml::<ZoneFile>(&mut cx, text) else {
        return Err(cx.diags);
    };
    let Some(origin) = origin(&mut cx, &zf) else {
        // Without an origin no name can be checked.
        return Err(cx.diags);
    };
    let ttl = zf.ttl.as_ref().map_or(300, |t| cx.ttl(t, "ttl"));
    let (soa, negative_ttl) = soa(&mut cx, &zf, &origin, ttl);
    let mut nodes = apex(&mut cx, &zf, &origin, ttl, &soa);
    let mut steering = steering(&mut cx, zf.steering.as_ref());
    let (mut datacenters, own) = self::shared::candidates(&mut cx, &zf, shared);
    let Records { delegations, spans } =
        records(&mut cx, &zf, &origin, ttl, &datacenters, shared, &mut nodes);
    self::shared::keep_referenced(&mut datacenters, own, &mut nodes);
    if steering.auto_lag {
        steering.price.lag = self::steering::auto_lag(&nodes, steering.load_interval);
    }
    node_rules(&mut cx, &nodes, &spans, &delegations, &origin);
    let origin = LowerName::new(&origin);
    add_empty_non_terminals(&mut nodes, &origin);

    if !cx.diags.is_empty() {
        // Sorted by position so the output reads top to bottom.
        cx.diags.sort_by_key(|d| (d.line, d.col));
        return Err(cx.diags);
    }
    Ok(Zone {
        origin,
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

/// The TOML as its serde model; a syntax or shape error ends the check.
fn parse_toml<T: serde::de::DeserializeOwned>(cx: &mut Ctx<'_>, text: &str) -> Option<T> {
    match toml::from_str(text) {
        Ok(z) => Some(z),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.err(span, e.message().trim().to_string());
            None
        }
    }
}

fn origin(cx: &mut Ctx<'_>, zf: &ZoneFile) -> Option<Name> {
    match parse_absolute(zf.origin.get_ref()) {
        Ok(n) => Some(n),
        Err(m) => {
            cx.err(zf.origin.span(), format!("origin: {m}"));
            None
        }
    }
}

/// The SOA record, and the TTL of negative answers (RFC 2308: the SOA's
/// minimum, capped by the zone TTL, unless configured).
fn soa(cx: &mut Ctx<'_>, zf: &ZoneFile, origin: &Name, ttl: u32) -> (Record, u32) {
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
    let mname = name_or_err(cx, &soa_def.mname, origin, "soa.mname");
    let rname = name_or_err(cx, &soa_def.rname, origin, "soa.rname");
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
    (soa, negative_ttl)
}

/// The node map, holding the apex with its SOA and the top-level NS list.
fn apex(
    cx: &mut Ctx<'_>,
    zf: &ZoneFile,
    origin: &Name,
    ttl: u32,
    soa: &Record,
) -> HashMap<LowerName, Node> {
    if zf.ns.get_ref().is_empty() {
        cx.err(zf.ns.span(), "ns: a zone needs at least one name server");
    }
    let mut apex_ns = Vec::new();
    for ns in zf.ns.get_ref() {
        let n = name_or_err(cx, ns, origin, "ns");
        apex_ns.push(Record::from_rdata(origin.clone(), ttl, RData::NS(NS(n))));
    }
    let apex = Node {
        rrsets: vec![
            RRset {
                rtype: RecordType::SOA,
                records: vec![soa.clone()],
            },
            RRset {
                rtype: RecordType::NS,
                records: apex_ns,
            },
        ],
        steered: None,
    };
    HashMap::from([(LowerName::new(origin), apex)])
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

fn name_or_err(cx: &mut Ctx<'_>, v: &Spanned<String>, origin: &Name, what: &str) -> Name {
    match parse_name(v.get_ref(), origin) {
        Ok(n) => n,
        Err(m) => {
            cx.err(v.span(), format!("{what}: `{}`: {m}", v.get_ref()));
            Name::root()
        }
    }
}
