//! The query handler: DNS wire bytes in, wire bytes out. It owns every
//! protocol decision (FORMERR, NOTIMP, BADVERS, REFUSED, truncation, ECS
//! scope) and delegates the steering choice to [`crate::control::decide`].
//! Transports (UDP, TCP) only move bytes; tests and benchmarks call
//! [`Handler::handle`] directly with the same bytes a socket would carry.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::ecs::{self, Ecs};
use super::transport::{response_limit, Transport, DEFAULT_UDP_PAYLOAD};
use crate::control::{steer_client, Control, Family, Mode, World};
use crate::geo::GeoDb;
use crate::metrics::Metrics;
use crate::zone::{Node, Zone};

/// How many CNAMEs inside our zones we follow for one answer.
const MAX_CNAME_CHAIN: usize = 8;

/// Everything needed to answer queries; cheap to share between workers.
pub struct Handler {
    /// The state owner whose snapshot each query reads.
    pub control: Arc<Control>,
    /// The geo database (`None`: every client unlocated).
    pub geo: Option<Arc<GeoDb>>,
    /// Query counters.
    pub metrics: Arc<Metrics>,
    /// Our EDNS UDP payload size.
    pub udp_payload: u16,
    /// Try [`super::fast`] first (off only to test the general path).
    pub fast: bool,
    /// This server's identifier, returned to a query that asks for it
    /// with the NSID option (RFC 5001): which anycast instance answered.
    pub nsid: Option<Arc<[u8]>>,
}

/// The client as steering sees it.
struct Client {
    /// Address used for the geo lookup.
    addr: IpAddr,
    ecs: Option<Ecs>,
}

/// What the lookup produced, before encoding.
struct Answer {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    /// ECS scope to echo (in the cell's own family), when the answer depended
    /// on the client's location.
    scope: Option<(u8, bool)>,
}

impl Answer {
    fn new(rcode: ResponseCode) -> Self {
        Answer {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            scope: None,
        }
    }
}

impl Handler {
    /// A handler with the default UDP payload and the fast path on.
    pub fn new(control: Arc<Control>, geo: Option<Arc<GeoDb>>, metrics: Arc<Metrics>) -> Self {
        Handler {
            control,
            geo,
            metrics,
            udp_payload: DEFAULT_UDP_PAYLOAD,
            fast: true,
            nsid: None,
        }
    }

    /// Answers one query into `out` (cleared first); `false` means: send
    /// nothing. The transports call this with a buffer they reuse.
    pub fn handle_into(
        &self,
        query: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        if self.fast && query.len() >= 12 && query[2] & 0x80 == 0 {
            let world = self.control.world();
            if let Some((rcode, qtype)) = super::fast::answer(
                &world,
                self.geo.as_deref(),
                self.udp_payload,
                query,
                src,
                transport,
                out,
            ) {
                self.metrics.count(rcode, Some(RecordType::from(qtype)));
                return true;
            }
        }
        match self.general(query, src, transport) {
            Some(resp) => {
                out.clear();
                out.extend_from_slice(&resp);
                true
            }
            None => false,
        }
    }

    /// Answers one query. `None` means: send nothing (a response, or bytes
    /// too short to carry even a header, which cannot be answered).
    pub fn handle(&self, query: &[u8], src: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        self.handle_into(query, src, transport, &mut out)
            .then_some(out)
    }

    /// The general path on hickory-proto: every query, every protocol case.
    fn general(&self, query: &[u8], src: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            // Shorter than a header, or a response: answering responses is
            // how reflection loops start.
            self.metrics.count_dropped();
            return None;
        }
        let req = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => {
                self.metrics.count(ResponseCode::FormErr, None);
                return Some(header_only_error(query, ResponseCode::FormErr));
            }
        };
        let resp = self.respond(&req, query, src);
        let qtype = req.queries.first().map(|q| q.query_type());
        self.metrics.count(resp.metadata.response_code, qtype);
        Some(self.encode(&req, resp, transport))
    }

    fn respond(&self, req: &Message, raw: &[u8], src: IpAddr) -> Message {
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        resp.add_queries(req.queries.iter().cloned());
        let req_edns = req.edns.as_ref();
        let mut edns = req_edns.map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(self.udp_payload);
            // RFC 5001: the identifier goes to whoever asks, in every
            // response with an OPT, errors included.
            if let (Some(id), Some(_)) = (&self.nsid, asked.option(EdnsCode::NSID)) {
                if let Ok(p) = NSIDPayload::new(id.to_vec()) {
                    e.options_mut().insert(EdnsOption::NSID(p));
                }
            }
            e
        });

        let rcode_only = |mut resp: Message, rcode: ResponseCode, edns: Option<Edns>| {
            resp.metadata.response_code = rcode;
            if let Some(e) = edns {
                resp.set_edns(e);
            }
            resp
        };
        if req.metadata.op_code != OpCode::Query {
            return rcode_only(resp, ResponseCode::NotImp, edns);
        }
        if let Some(e) = req_edns {
            if e.version() > 0 {
                // RFC 6891 §6.1.3: BADVERS, with our highest version (0).
                return rcode_only(resp, ResponseCode::BADVERS, edns);
            }
        }
        if req.queries.len() != 1 {
            return rcode_only(resp, ResponseCode::FormErr, edns);
        }
        let client = match client_of(req_edns, raw, src) {
            Ok(c) => c,
            Err(_) => return rcode_only(resp, ResponseCode::FormErr, edns),
        };
        let q = &req.queries[0];
        let world = self.control.world();
        let ans = self.lookup(&world, q, &client);

        resp.metadata.response_code = ans.rcode;
        resp.metadata.authoritative = ans.authoritative;
        resp.add_answers(ans.answers);
        resp.add_authorities(ans.authorities);
        resp.add_additionals(ans.additionals);
        if let (Some(e), Some(ecs)) = (edns.as_mut(), client.ecs) {
            // §7.2.1: echo the option; scope 0 when the answer did not depend
            // on the address or the source prefix was 0.
            let (scope, v4) = match ans.scope {
                Some(s) if ecs.source_prefix > 0 => s,
                _ => (0, true),
            };
            e.options_mut()
                .insert(EdnsOption::Subnet(ecs.echo(scope, v4)));
        }
        if let Some(e) = edns {
            resp.set_edns(e);
        }
        resp
    }

    fn lookup(&self, world: &World, q: &Query, client: &Client) -> Answer {
        let qtype = q.query_type();
        if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
            return Answer::new(ResponseCode::Refused);
        }
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Answer::new(ResponseCode::Refused);
        }
        let qname = LowerName::new(q.name());
        let Some((zi, zone)) = world.zones.find(&qname) else {
            return Answer::new(ResponseCode::Refused);
        };
        let mut ans = Answer::new(ResponseCode::NoError);
        ans.authoritative = true;

        let mut name = qname;
        let mut owner = q.name().clone();
        for _ in 0..=MAX_CNAME_CHAIN {
            if let Some(cut) = zone.delegation_for(&name) {
                if !(cut == &name && qtype == RecordType::DS) {
                    self.referral(zone, cut, &mut ans);
                    return ans;
                }
            }
            let Some(node) = zone.nodes.get(&name) else {
                ans.rcode = ResponseCode::NXDomain;
                negative(zone, &mut ans);
                return ans;
            };
            if let Some(cname) = node.rrset(RecordType::CNAME) {
                if qtype == RecordType::CNAME || qtype == RecordType::ANY {
                    push_owned(&mut ans.answers, &cname.records, &owner);
                    return ans;
                }
                push_owned(&mut ans.answers, &cname.records, &owner);
                let Some(RData::CNAME(target)) = cname.records.first().map(|r| &r.data) else {
                    return ans;
                };
                let target: Name = target.0.clone();
                let lt = LowerName::new(&target);
                if !zone.origin.zone_of(&lt) {
                    // Out of zone: the resolver follows it.
                    return ans;
                }
                name = lt;
                owner = target;
                continue;
            }
            self.answer_node(world, zi, node, qtype, &owner, client, &mut ans);
            return ans;
        }
        // A CNAME loop inside the zone.
        ans.rcode = ResponseCode::ServFail;
        ans
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_node(
        &self,
        world: &World,
        zi: usize,
        node: &Node,
        qtype: RecordType,
        owner: &Name,
        client: &Client,
        ans: &mut Answer,
    ) {
        let (zone, view) = (&world.zones.zones[zi], &world.views[zi]);
        let steered_family = match qtype {
            RecordType::A => Some(Family::V4),
            RecordType::AAAA => Some(Family::V6),
            // RFC 8482: one RRset is enough for ANY; a steered name offers
            // its A answer.
            RecordType::ANY if node.steered.is_some() => Some(Family::V4),
            _ => None,
        };
        if let (Some(st), Some(family)) = (&node.steered, steered_family) {
            let (d, place) = steer_client(world, zi, st, family, self.geo.as_deref(), client.addr);
            ans.scope = Some((place.cell.prefix_len(), place.cell.network().is_ipv4()));
            if d.mode == Mode::AllDownServfail {
                ans.rcode = ResponseCode::ServFail;
                ans.authoritative = false;
                return;
            }
            if let Some(first) = d.chosen(zone, st).next() {
                view.dcs[first].counters.count_answer();
            }
            let before = ans.answers.len();
            for a in d.addresses(zone, st) {
                let rd = match a {
                    IpAddr::V4(v4) => RData::A(v4.into()),
                    IpAddr::V6(v6) => RData::AAAA(v6.into()),
                };
                ans.answers
                    .push(Record::from_rdata(owner.clone(), d.ttl, rd));
            }
            if ans.answers.len() == before {
                negative(zone, ans);
            }
            return;
        }
        let rrset = if qtype == RecordType::ANY {
            node.rrsets.first()
        } else {
            node.rrset(qtype)
        };
        match rrset {
            Some(set) => push_owned(&mut ans.answers, &set.records, owner),
            None => negative(zone, ans),
        }
    }

    fn referral(&self, zone: &Zone, cut: &LowerName, ans: &mut Answer) {
        ans.authoritative = false;
        let Some(ns) = zone.nodes.get(cut).and_then(|n| n.rrset(RecordType::NS)) else {
            return;
        };
        ans.authorities.extend(ns.records.iter().cloned());
        // Glue: addresses of in-zone name servers, needed when they sit
        // below the cut they serve.
        for r in &ns.records {
            if let RData::NS(target) = &r.data {
                let t = LowerName::new(&target.0);
                if let Some(node) = zone.nodes.get(&t) {
                    for rt in [RecordType::A, RecordType::AAAA] {
                        if let Some(set) = node.rrset(rt) {
                            ans.additionals.extend(set.records.iter().cloned());
                        }
                    }
                }
            }
        }
    }

    fn encode(&self, req: &Message, resp: Message, transport: Transport) -> Vec<u8> {
        let limit = response_limit(
            transport,
            req.edns.as_ref().map(Edns::max_payload),
            self.udp_payload,
        );
        let mut buf = Vec::with_capacity(512);
        let full = {
            let mut enc = BinEncoder::new(&mut buf);
            resp.emit(&mut enc)
        };
        if full.is_ok() && buf.len() <= limit {
            return buf;
        }
        if full.is_err() {
            tracing::warn!(
                id = req.metadata.id,
                "response does not encode; answering SERVFAIL"
            );
            let mut m = Message::response(req.metadata.id, req.metadata.op_code);
            m.metadata.response_code = ResponseCode::ServFail;
            m.add_queries(req.queries.iter().cloned());
            return m.to_vec().unwrap_or_default();
        }
        // Too big for this client over UDP: header, question and OPT with TC
        // set, so it retries over TCP. A partial answer would be cached as if
        // it were whole.
        self.metrics.count_truncated();
        let mut t = resp.truncate();
        t.metadata.message_type = MessageType::Response;
        t.to_vec().unwrap_or_default()
    }
}

/// Copies records, giving them the owner name as the query spelled it
/// (answers echo the query's case).
fn push_owned(out: &mut Vec<Record>, records: &[Record], owner: &Name) {
    for r in records {
        let mut r = r.clone();
        r.name = owner.clone();
        out.push(r);
    }
}

/// NXDOMAIN/NODATA: the SOA in the authority section with the negative TTL.
fn negative(zone: &Zone, ans: &mut Answer) {
    let mut soa = zone.soa.clone();
    soa.ttl = zone.negative_ttl.min(zone.soa.ttl);
    ans.authorities.push(soa);
}

fn client_of(edns: Option<&Edns>, raw: &[u8], src: IpAddr) -> Result<Client, &'static str> {
    let src = crate::geo::normalise_ip(src);
    let Some(EdnsOption::Subnet(cs)) = edns.and_then(|e| e.option(EdnsCode::Subnet)) else {
        return Ok(Client {
            addr: src,
            ecs: None,
        });
    };
    let e = Ecs::from_option(cs, ecs::raw_option_len(raw))?;
    // Source prefix 0: the resolver asks us not to use client information.
    let addr = if e.source_prefix == 0 {
        src
    } else {
        crate::geo::normalise_ip(e.address)
    };
    Ok(Client { addr, ecs: Some(e) })
}

/// An error response built from the raw header only, for messages the
/// parser rejected: same ID, opcode and RD, no sections.
fn header_only_error(query: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = query[..12].to_vec();
    out[2] = 0x80 | (query[2] & 0x79); // QR, opcode, RD kept; AA and TC clear
    out[3] = rcode.low() & 0x0f; // RA, Z, AD, CD clear
    out[4..12].fill(0);
    out
}
