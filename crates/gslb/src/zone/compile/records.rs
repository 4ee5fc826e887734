//! The `[records]` table into nodes: each definition typed, checked and
//! turned into a static RRset or a steered name, duplicates caught across
//! spellings; then the rules that need every record of a name, and the
//! empty non-terminals.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use hickory_proto::rr::rdata::{CNAME, MX, NS, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use serde::Deserialize;
use toml::Spanned;

use super::shared::{unknown_datacenter, SharedDcs};
use super::{parse_name, Ctx};
use crate::steer::hash_bytes;
use crate::zone::model::{RecordDef, ZoneFile};
use crate::zone::{Datacenter, Node, RRset, Steered};

/// What [`records`] learns besides the nodes.
pub(super) struct Records {
    /// Names with NS records below the apex: zone cuts.
    pub(super) delegations: BTreeSet<LowerName>,
    /// Where each owner was first written, for node-level errors.
    pub(super) spans: HashMap<LowerName, Range<usize>>,
}

/// Every `[records]` entry into `nodes`: static RRsets and steered names,
/// the latter naming `datacenters` (the zone's own and the `shared` ones).
pub(super) fn records(
    cx: &mut Ctx<'_>,
    zf: &ZoneFile,
    origin: &Name,
    ttl: u32,
    datacenters: &[Datacenter],
    shared: Option<&SharedDcs>,
    nodes: &mut HashMap<LowerName, Node>,
) -> Records {
    // Owner (lower case) → where it was first written, to report duplicates
    // written with a different spelling ("www" vs "WWW" vs "www.example.com.").
    let mut seen: HashMap<(LowerName, RecordType), Range<usize>> = HashMap::new();
    let mut out = Records {
        delegations: BTreeSet::new(),
        spans: HashMap::new(),
    };
    for (owner, value) in &zf.records {
        let span = owner.span();
        let name = match parse_owner(owner.get_ref(), origin) {
            Ok(n) => n,
            Err(m) => {
                cx.err(span, format!("record name `{}`: {m}", owner.get_ref()));
                continue;
            }
        };
        let lname = LowerName::new(&name);
        out.spans.entry(lname.clone()).or_insert(span.clone());
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
            let Some((def, rtype)) = record_def(cx, owner.get_ref(), value.span(), raw) else {
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
            let at = RecordAt {
                span: value.span(),
                owner: owner.get_ref(),
                name: &name,
                ttl: rec_ttl,
            };
            match rtype {
                None => {
                    if let Some(s) = steered(cx, &at, &def, datacenters, shared, &lname) {
                        node.steered = Some(s);
                    }
                }
                Some(RecordType::NS) if name.is_wildcard() => {
                    cx.err(
                        value.span(),
                        format!("`{}`: a wildcard cannot own NS records (RFC 4592 §4.2: delegate a name, not a pattern)", owner.get_ref()),
                    );
                }
                Some(rt) => {
                    if let Some(set) = static_rrset(cx, &at, &def, rt, origin) {
                        if rt == RecordType::NS {
                            out.delegations.insert(lname.clone());
                        }
                        node.rrsets.push(set);
                    }
                }
            }
        }
    }
    out
}

/// One element of an owner's definitions, typed: `None` after an error.
fn record_def(
    cx: &mut Ctx<'_>,
    owner: &str,
    span: Range<usize>,
    raw: &toml::Value,
) -> Option<(RecordDef, Option<RecordType>)> {
    let def = match RecordDef::deserialize(raw.clone()) {
        Ok(d) => d,
        Err(e) => {
            cx.err(span, format!("`{owner}`: {}", e.message().trim()));
            return None;
        }
    };
    let Some(rtype) = record_type(&def.rtype) else {
        cx.err(
            span,
            format!(
                "`{owner}`: unknown record type `{}` (expected steered, A, AAAA, CNAME, MX, TXT, SRV, CAA or NS)",
                def.rtype
            ),
        );
        return None;
    };
    Some((def, rtype))
}

/// One record definition's place: the span of its value, the owner as
/// written and as parsed, and its TTL.
struct RecordAt<'a> {
    span: Range<usize>,
    owner: &'a str,
    name: &'a Name,
    ttl: u32,
}

/// A static RRset from `values`/`value`; `None` when the definition is
/// unusable (already reported). Bad single values are reported and left out.
fn static_rrset(
    cx: &mut Ctx<'_>,
    at: &RecordAt<'_>,
    def: &RecordDef,
    rt: RecordType,
    origin: &Name,
) -> Option<RRset> {
    let owner = at.owner;
    if def.datacenters.is_some() || def.answers.is_some() {
        cx.err(
            at.span.clone(),
            format!("`{owner}`: `datacenters`/`answers` only apply to type = \"steered\""),
        );
    }
    let values: Vec<String> = match (&def.values, &def.value) {
        (Some(v), None) => v.clone(),
        (None, Some(v)) => vec![v.clone()],
        (Some(_), Some(_)) => {
            cx.err(
                at.span.clone(),
                format!("`{owner}`: give `values` or `value`, not both"),
            );
            return None;
        }
        (None, None) => {
            cx.err(
                at.span.clone(),
                format!("`{owner}`: {rt} record needs `values`"),
            );
            return None;
        }
    };
    if values.is_empty() {
        cx.err(
            at.span.clone(),
            format!("`{owner}`: {rt} record has no values"),
        );
        return None;
    }
    if rt == RecordType::NS && at.name == origin {
        cx.err(
            at.span.clone(),
            "apex NS records are set by the top-level `ns` list",
        );
        return None;
    }
    if rt == RecordType::CNAME && values.len() != 1 {
        cx.err(
            at.span.clone(),
            format!("`{owner}`: a CNAME has exactly one target"),
        );
        return None;
    }
    let mut records = Vec::with_capacity(values.len());
    for v in &values {
        match rdata(rt, v, origin) {
            Ok(rd) => records.push(Record::from_rdata(at.name.clone(), at.ttl, rd)),
            Err(m) => cx.err(at.span.clone(), format!("`{owner}`: {rt} value `{v}`: {m}")),
        }
    }
    Some(RRset { rtype: rt, records })
}

fn steered(
    cx: &mut Ctx<'_>,
    at: &RecordAt<'_>,
    def: &RecordDef,
    dcs: &[Datacenter],
    shared: Option<&SharedDcs>,
    name: &LowerName,
) -> Option<Steered> {
    let (span, owner, ttl) = (at.span.clone(), at.owner, at.ttl);
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
                if let Some(m) = unknown_datacenter(shared, n) {
                    cx.err(span.clone(), format!("`{owner}`: {m}"));
                }
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

fn parse_owner(s: &str, origin: &Name) -> Result<Name, String> {
    // RFC 4592: a wildcard is `*` as the whole leftmost label; anywhere
    // else an asterisk would be a literal no one means.
    if s.contains('*') && !(s == "*" || (s.starts_with("*.") && !s[2..].contains('*'))) {
        return Err(
            "a wildcard is `*` as the whole first label (`*`, `*.cdn`); an asterisk elsewhere is not allowed"
                .into(),
        );
    }
    let n = parse_name(s, origin)?;
    if !origin.zone_of(&n) {
        return Err(format!("is outside the zone {origin}"));
    }
    Ok(n)
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

/// Node-level rules that need every record of a name: CNAME exclusivity,
/// steered names without static addresses, and only NS at a zone cut and
/// glue below it.
pub(super) fn node_rules(
    cx: &mut Ctx<'_>,
    nodes: &HashMap<LowerName, Node>,
    spans: &HashMap<LowerName, Range<usize>>,
    delegations: &BTreeSet<LowerName>,
    origin: &Name,
) {
    let apex = LowerName::new(origin);
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
            if *owner == apex {
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
        for cut in delegations {
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
}

/// Empty non-terminals: ancestors of every owner, up to the apex, so that
/// their children make them NODATA rather than NXDOMAIN.
pub(super) fn add_empty_non_terminals(nodes: &mut HashMap<LowerName, Node>, origin: &LowerName) {
    let owners: Vec<LowerName> = nodes.keys().cloned().collect();
    for owner in owners {
        let mut n = owner;
        while n != *origin && !n.is_root() {
            n = n.base_name();
            nodes.entry(n.clone()).or_default();
        }
    }
}
