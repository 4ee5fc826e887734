//! The fast path: the common query — one question of class IN, at most an
//! OPT record (version 0, optionally ECS) — parsed in place without
//! allocation and answered by writing straight into a reused buffer from
//! precomputed templates ([`super::index`]) and the allocation-free steering
//! decision.
//!
//! Anything unusual returns `None` and goes to the general handler on
//! hickory-proto: compression pointers or extended labels in the question,
//! unknown opcodes, EDNS versions above 0, malformed or duplicate ECS,
//! trailing bytes, ANY and zone transfers, CNAMEs, delegations, SERVFAIL
//! policies, and answers too big for the client. Correctness never depends
//! on this file: the general handler answers everything, and tests check
//! that both give the same answers.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use super::cookie::{unix_seconds, Cookies, QueryCookie, Verdict, OPT_COOKIE};
use super::ecs::Ecs;
use super::screen::{u16_at, OPT_ECS, OPT_KEEPALIVE, OPT_NSID, TYPE_OPT};
use super::transport::{response_limit, Transport};
use crate::control::{steer_client, DcCounters, Family, Mode, World};
use crate::geo::GeoDb;
use crate::zone::wire::Entry;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// A query the fast path understood.
struct Query<'a> {
    /// Question bytes as sent (name, type, class): echoed verbatim.
    question: &'a [u8],
    name_len: usize,
    qtype: u16,
    /// Client's UDP payload size, if it sent OPT.
    edns: Option<u16>,
    ecs: Option<Ecs>,
    cookie: Option<QueryCookie>,
}

/// Parses `q`, writing the lower-case wire name into `name`.
fn parse<'a>(q: &'a [u8], name: &mut [u8; 256]) -> Option<Query<'a>> {
    // Opcode QUERY, one question, nothing but an optional OPT.
    if q.len() < 17
        || q[2] & 0x78 != 0
        || u16_at(q, 4)? != 1
        || u16_at(q, 6)? != 0
        || u16_at(q, 8)? != 0
    {
        return None;
    }
    let ar = u16_at(q, 10)?;
    if ar > 1 {
        return None;
    }
    let mut pos = 12;
    let mut n = 0;
    loop {
        let len = usize::from(*q.get(pos)?);
        if len == 0 {
            break;
        }
        if len > 63 || n + len + 1 > 254 {
            return None;
        }
        let label = q.get(pos + 1..pos + 1 + len)?;
        name[n] = len as u8;
        for (d, s) in name[n + 1..n + 1 + len].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        n += len + 1;
        pos += len + 1;
    }
    name[n] = 0;
    let name_len = n + 1;
    pos += 1;
    let qtype = u16_at(q, pos)?;
    if u16_at(q, pos + 2)? != 1 {
        return None;
    }
    pos += 4;
    let question = &q[12..pos];
    if ar == 0 {
        return (pos == q.len()).then_some(Query {
            question,
            name_len,
            qtype,
            edns: None,
            ecs: None,
            cookie: None,
        });
    }
    // OPT: root owner, type 41, class = payload, TTL = rcode/version/flags.
    if *q.get(pos)? != 0 || u16_at(q, pos + 1)? != TYPE_OPT || *q.get(pos + 6)? != 0 {
        return None;
    }
    let payload = u16_at(q, pos + 3)?;
    let rdlen = usize::from(u16_at(q, pos + 9)?);
    let rdata = q.get(pos + 11..pos + 11 + rdlen)?;
    if pos + 11 + rdlen != q.len() {
        return None;
    }
    let mut ecs = None;
    let mut cookie = None;
    let mut o = 0;
    while o < rdata.len() {
        let code = u16_at(rdata, o)?;
        let len = usize::from(u16_at(rdata, o + 2)?);
        let data = rdata.get(o + 4..o + 4 + len)?;
        if code == OPT_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(Ecs::parse(data)?);
        } else if code == OPT_NSID || code == OPT_KEEPALIVE {
            // The answer carries our identifier, or the TCP idle time:
            // the general path writes those.
            return None;
        } else if code == OPT_COOKIE && cookie.is_none() {
            // Malformed: FORMERR, on the general path.
            cookie = Some(QueryCookie::parse(data)?);
        }
        o += 4 + len;
    }
    Some(Query {
        question,
        name_len,
        qtype,
        edns: Some(payload),
        ecs,
        cookie,
    })
}

/// Answers `q` into `out`, or returns `None` to leave it to the general
/// handler. On success returns the response code, the query type and
/// the verdict on the query's cookie, if it had one.
///
/// Phases: parse the question, write the header and question, write the
/// answer (or find the NXDOMAIN/REFUSED case), the negative SOA, the final
/// header fields, the OPT record; then the size check, and the DC counter
/// only once the answer is sure to be sent.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    world: &World,
    geo: Option<&GeoDb>,
    cookies: Option<&Cookies>,
    udp_payload: u16,
    q: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<(ResponseCode, u16, Option<Verdict>)> {
    let mut name = [0u8; 256];
    let query = parse(q, &mut name)?;
    if matches!(query.qtype, 255 | 252 | 251) {
        return None;
    }
    let lname = &name[..query.name_len];
    write_question(q, query.question, out);
    let body = match world.zones.index.get(lname) {
        Some(e) if e.slow => return None,
        Some(e) => answer_entry(world, geo, e, &query, src, out)?,
        None => match closest(world, lname) {
            Closest::Wildcard(e) if e.slow => return None,
            // Synthesized: the answer's owner is the question (a pointer
            // to it), as RFC 4592 wants.
            Closest::Wildcard(e) => answer_entry(world, geo, e, &query, src, out)?,
            Closest::Encloser(e) if e.slow => return None,
            Closest::Encloser(e) => {
                let mut body = Body::new(ResponseCode::NXDomain);
                body.negative_zone = Some(e.zone);
                body
            }
            Closest::Outside => Body::new(ResponseCode::Refused),
        },
    };
    let mut ns = 0u16;
    if let Some(z) = body.negative_zone {
        out.extend_from_slice(&world.zones.index.zones[z].negative_soa);
        ns = 1;
    }
    finish_header(out, body.rcode, body.an, ns);
    let mut cookie = None;
    if query.edns.is_some() {
        cookie = match (cookies, &query.cookie) {
            (Some(c), Some(qc)) => Some(c.judge(qc, src, unix_seconds())),
            _ => None,
        };
        write_opt(
            out,
            udp_payload,
            query.ecs,
            body.scope,
            cookie.as_ref().map(|v| &v.reply),
        );
    }
    // Too big: the general handler truncates properly.
    if out.len() > response_limit(transport, query.edns, udp_payload) {
        return None;
    }
    if let Some(c) = body.counted {
        c.count_answer();
    }
    Some((body.rcode, query.qtype, cookie))
}

/// What the answer phase wrote, and what the later phases need of it.
struct Body<'w> {
    rcode: ResponseCode,
    /// Records written into the answer section.
    an: u16,
    /// The zone whose negative SOA goes into the authority section.
    negative_zone: Option<usize>,
    /// The cell's (prefix, is IPv4), when the answer depended on it.
    scope: Option<(u8, bool)>,
    /// The counters of the first DC answered.
    counted: Option<&'w DcCounters>,
}

impl Body<'_> {
    #[inline]
    fn new(rcode: ResponseCode) -> Self {
        Body {
            rcode,
            an: 0,
            negative_zone: None,
            scope: None,
            counted: None,
        }
    }
}

/// Header (ID, QR, RD and CD copied; counts filled in by [`finish_header`])
/// and the question as sent.
#[inline]
fn write_question(q: &[u8], question: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // QR, RD copied, AA set below; CD copied.
    out.extend_from_slice(&[
        q[0],
        q[1],
        0x80 | (q[2] & 0x01),
        q[3] & 0x10,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    out.extend_from_slice(question);
}

/// The name exists: its steered addresses, its static RRset of the type, or
/// NODATA.
#[inline]
fn answer_entry<'w>(
    world: &'w World,
    geo: Option<&GeoDb>,
    e: &Entry,
    query: &Query<'_>,
    src: IpAddr,
    out: &mut Vec<u8>,
) -> Option<Body<'w>> {
    let mut body = Body::new(ResponseCode::NoError);
    let family = match query.qtype {
        TYPE_A => Some(Family::V4),
        TYPE_AAAA => Some(Family::V6),
        _ => None,
    };
    if let (Some(st), Some(family)) = (&e.steered, family) {
        let (zone, view) = (&world.zones.zones[e.zone], &world.views[e.zone]);
        let addr = match query.ecs {
            Some(ecs) if ecs.source_prefix > 0 => ecs.address,
            _ => src,
        };
        let (d, place) = steer_client(world, e.zone, st, family, geo, addr);
        if d.mode == Mode::AllDownServfail {
            return None;
        }
        body.scope = Some((place.cell.prefix_len(), place.cell.network().is_ipv4()));
        body.counted = d
            .chosen(zone, st)
            .next()
            .map(|first| &*view.dcs[first].counters);
        body.an = write_addresses(out, &mut d.addresses(zone, st), d.ttl);
        if body.an == 0 {
            body.negative_zone = Some(e.zone);
        }
    } else if let Some(t) = e.rrset(query.qtype) {
        out.extend_from_slice(&t.bytes);
        body.an = t.count;
    } else {
        body.negative_zone = Some(e.zone);
    }
    Some(body)
}

/// A/AAAA records owned by the question's name (a pointer to offset 12);
/// returns how many. The iterator is borrowed, not moved: it is ~150 bytes
/// and a move here cost a `memcpy` per steered query.
#[inline]
fn write_addresses<I: Iterator<Item = IpAddr>>(out: &mut Vec<u8>, addrs: &mut I, ttl: u32) -> u16 {
    let ttl = ttl.to_be_bytes();
    let mut an = 0;
    for a in addrs {
        out.extend_from_slice(&[0xc0, 0x0c]);
        match a {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&[0, 1, 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], 0, 4]);
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&[0, 28, 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], 0, 16]);
                out.extend_from_slice(&v6.octets());
            }
        }
        an += 1;
    }
    an
}

/// Where a name the index does not hold stands.
enum Closest<'w> {
    /// Its closest encloser has a wildcard child: that answers.
    Wildcard(&'w Entry),
    /// Its closest encloser (NXDOMAIN in its zone, or below a cut).
    Encloser(&'w Entry),
    /// In no zone of ours: REFUSED.
    Outside,
}

/// The closest existing ancestor of `lname` and its `*` child (RFC 4592).
#[inline]
fn closest<'w>(world: &'w World, lname: &[u8]) -> Closest<'w> {
    let index = &world.zones.index;
    let mut off = 0;
    while lname[off] != 0 {
        off += 1 + usize::from(lname[off]);
        if let Some(e) = index.get(&lname[off..]) {
            let mut wild = [0u8; 258];
            let rest = &lname[off..];
            wild[..2].copy_from_slice(&[1, b'*']);
            wild[2..2 + rest.len()].copy_from_slice(rest);
            return match index.get(&wild[..2 + rest.len()]) {
                Some(w) if !e.slow => Closest::Wildcard(w),
                _ => Closest::Encloser(e),
            };
        }
    }
    Closest::Outside
}

/// AA (unless REFUSED), the response code and the section counts.
#[inline]
fn finish_header(out: &mut [u8], rcode: ResponseCode, an: u16, ns: u16) {
    if rcode != ResponseCode::Refused {
        out[2] |= 0x04; // AA
    }
    out[3] |= rcode.low();
    out[6..8].copy_from_slice(&an.to_be_bytes());
    out[8..10].copy_from_slice(&ns.to_be_bytes());
}

/// Our OPT record, echoing the client's ECS option with the scope of the
/// answer (RFC 7871 §7.2.1: 0 when it did not depend on the address or the
/// source prefix was 0), and the cookie option when there is one.
#[inline]
fn write_opt(
    out: &mut Vec<u8>,
    udp_payload: u16,
    ecs: Option<Ecs>,
    scope: Option<(u8, bool)>,
    cookie: Option<&[u8; 24]>,
) {
    out[11] = 1;
    let payload = udp_payload.to_be_bytes();
    out.extend_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, 0, 0]);
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(ecs) = ecs {
        let scope = match scope {
            Some((prefix, v4)) if ecs.source_prefix > 0 => ecs.scope_for(prefix, v4),
            _ => 0,
        };
        let addr_len = usize::from(ecs.source_prefix).div_ceil(8);
        let opt_len = (4 + addr_len) as u16;
        out.extend_from_slice(&[0, 8]);
        out.extend_from_slice(&opt_len.to_be_bytes());
        out.extend_from_slice(&ecs.family.to_be_bytes());
        out.extend_from_slice(&[ecs.source_prefix, scope]);
        match ecs.address {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..addr_len]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..addr_len]),
        }
    }
    if let Some(c) = cookie {
        out.extend_from_slice(&OPT_COOKIE.to_be_bytes());
        out.extend_from_slice(&24u16.to_be_bytes());
        out.extend_from_slice(c);
    }
    let rdlen = (out.len() - rdlen_at - 2) as u16;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}
