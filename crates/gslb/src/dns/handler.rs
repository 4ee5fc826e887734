//! The query handler: DNS wire bytes in, wire bytes out. It owns every
//! protocol decision (FORMERR, NOTIMP, BADVERS, REFUSED, truncation, ECS
//! scope) and delegates the steering choice to [`crate::control::decide`].
//! Transports (UDP, TCP) only move bytes; tests and benchmarks call
//! [`Handler::handle`] directly with the same bytes a socket would carry.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::cookie::{unix_seconds, Cookies, Verdict, OPT_COOKIE};
use super::ecs::Ecs;
use super::rrl::{self, question_hash, Action, Class, Decision, Rrl};
use super::screen::{badcookie_reply, error_reply, qtype_of, screen, Opt, Screen, OPT_KEEPALIVE};
use super::transport::{response_limit, Transport, DEFAULT_UDP_PAYLOAD};
use crate::control::{steer_client, Control, Family, Mode, World};
use crate::geo::GeoDb;
use crate::metrics::{Metrics, RrlCount};
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
    /// The TCP idle time, advertised to a TCP query that asks with
    /// edns-tcp-keepalive (RFC 7828).
    pub tcp_keepalive: Option<Duration>,
    /// DNS cookies (RFC 7873, RFC 9018); `None`: the option is ignored.
    pub cookies: Option<Arc<Cookies>>,
    /// Response rate limiting over UDP; `None`: off.
    pub rrl: Option<Arc<Rrl>>,
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
            tcp_keepalive: None,
            cookies: None,
            rrl: None,
        }
    }

    /// Answers one query into `out` (cleared first); `false` means: send
    /// nothing. The transports call this with a buffer they reuse. Over
    /// UDP the rate limiter has the last word.
    pub fn handle_into(
        &self,
        query: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some((rcode, cookie)) = self.answer_into(query, src, transport, out) else {
            return false;
        };
        if let Some(v) = cookie {
            self.metrics.count_cookie(v.presented, v.valid);
        }
        match (&self.rrl, transport) {
            (Some(rrl), Transport::Udp) => self.limit(rrl, query, src, rcode, cookie, out),
            _ => true,
        }
    }

    /// The response to `query` in `out`: its code, and the verdict on the
    /// query's cookie. `None`: nothing to send.
    fn answer_into(
        &self,
        query: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<(ResponseCode, Option<Verdict>)> {
        if self.fast && query.len() >= 12 && query[2] & 0x80 == 0 {
            let world = self.control.world();
            if let Some((rcode, qtype, cookie)) = super::fast::answer(
                &world,
                self.geo.as_deref(),
                self.cookies.as_deref(),
                self.udp_payload,
                query,
                src,
                transport,
                out,
            ) {
                self.metrics.count(rcode, Some(RecordType::from(qtype)));
                return Some((rcode, cookie));
            }
        }
        let (resp, rcode, cookie) = self.general(query, src, transport)?;
        out.clear();
        out.extend_from_slice(&resp);
        Some((rcode, cookie))
    }

    /// The rate limiter's verdict on the UDP response in `out`: `false`
    /// drops it; a slip leaves it truncated, or, to a client that sent a
    /// cookie but no valid server cookie, BADCOOKIE with a fresh one (RFC
    /// 7873 §5.2.3): its retry carries a cookie the limiter exempts.
    fn limit(
        &self,
        rrl: &Rrl,
        query: &[u8],
        src: IpAddr,
        rcode: ResponseCode,
        cookie: Option<Verdict>,
        out: &mut Vec<u8>,
    ) -> bool {
        if cookie.is_some_and(|v| v.valid) || rrl.exempt(src) {
            return true;
        }
        let class = Class::of(rcode, out);
        let name = match class {
            Class::Answer => question_hash(query),
            Class::Nxdomain | Class::Referral => rrl::authority_hash(out),
            Class::Error => 0,
        };
        match rrl.check(src, class, name, std::time::Instant::now()) {
            Decision::Allowed => true,
            Decision::Would => {
                self.metrics.count_rrl(class, RrlCount::Logged);
                if rrl.should_log() {
                    tracing::info!(client = %src, class = class.name(), "rate limit would apply (log-only)");
                }
                true
            }
            Decision::Limited(Action::Slip) => {
                self.metrics.count_rrl(class, RrlCount::Slipped);
                match cookie {
                    Some(v) => *out = badcookie_reply(query, self.udp_payload, &v.reply),
                    None => rrl::slip(out),
                }
                true
            }
            Decision::Limited(_) => {
                self.metrics.count_rrl(class, RrlCount::Dropped);
                false
            }
        }
    }

    /// Answers one query. `None` means: send nothing (a response, or bytes
    /// too short to carry even a header, which cannot be answered).
    pub fn handle(&self, query: &[u8], src: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        self.handle_into(query, src, transport, &mut out)
            .then_some(out)
    }

    /// The general path: the screen first (bounded work, every malformed
    /// or refused case), then hickory-proto on what it passed.
    fn general(
        &self,
        query: &[u8],
        src: IpAddr,
        transport: Transport,
    ) -> Option<(Vec<u8>, ResponseCode, Option<Verdict>)> {
        let (clean, question, opt) = match screen(query) {
            Screen::Drop => {
                self.metrics.count_dropped();
                return None;
            }
            Screen::Error {
                rcode,
                question,
                opt,
            } => return Some(self.screened_out(query, src, rcode, question, opt)),
            Screen::CookieOnly { opt } => {
                // RFC 7873 §5.4: NOERROR, our cookie, nothing else (FORMERR
                // when this server does no cookies).
                let rcode = if self.cookies.is_some() {
                    ResponseCode::NoError
                } else {
                    ResponseCode::FormErr
                };
                return Some(self.screened_out(query, src, rcode, None, Some(opt)));
            }
            Screen::Query {
                clean,
                question,
                opt,
            } => (clean, question, opt),
        };
        if transport == Transport::Tcp && opt.is_some_and(|o| o.keepalive == Some(false)) {
            // RFC 7828 §3.2.1: a query carries no timeout.
            return Some(self.screened_out(query, src, ResponseCode::FormErr, Some(question), opt));
        }
        let req = match Message::from_vec(&clean) {
            Ok(m) => m,
            Err(_) => {
                return Some(self.screened_out(
                    query,
                    src,
                    ResponseCode::FormErr,
                    Some(question),
                    opt,
                ))
            }
        };
        let cookie = self.cookie(opt.as_ref(), src);
        let resp = self.respond(&req, opt, cookie, src, transport);
        let qtype = req.queries.first().map(|q| q.query_type());
        let rcode = resp.metadata.response_code;
        self.metrics.count(rcode, qtype);
        Some((self.encode(&req, resp, transport), rcode, cookie))
    }

    /// The answer to a query the screen (or the parser after it) refused.
    fn screened_out(
        &self,
        query: &[u8],
        src: IpAddr,
        rcode: ResponseCode,
        question: Option<&[u8]>,
        opt: Option<Opt>,
    ) -> (Vec<u8>, ResponseCode, Option<Verdict>) {
        let qtype = question.and_then(qtype_of).map(RecordType::from);
        self.metrics.count(rcode, qtype);
        let cookie = self.cookie(opt.as_ref(), src);
        let reply = error_reply(
            query,
            rcode,
            question,
            opt.as_ref(),
            self.udp_payload,
            self.nsid.as_deref(),
            cookie.as_ref().map(|v| &v.reply[..]),
        );
        (reply, rcode, cookie)
    }

    /// The verdict on the query's cookie, when it has one and this server
    /// does cookies.
    fn cookie(&self, opt: Option<&Opt>, src: IpAddr) -> Option<Verdict> {
        let (cookies, c) = (self.cookies.as_deref()?, opt?.cookie?);
        Some(cookies.judge(&c, src, unix_seconds()))
    }

    fn respond(
        &self,
        req: &Message,
        opt: Option<Opt>,
        cookie: Option<Verdict>,
        src: IpAddr,
        transport: Transport,
    ) -> Message {
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        resp.add_queries(req.queries.iter().cloned());
        let mut edns = opt.map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(self.udp_payload);
            // RFC 5001: the identifier goes to whoever asks, in every
            // response with an OPT, errors included.
            if let (Some(id), true) = (&self.nsid, asked.nsid) {
                if let Ok(p) = NSIDPayload::new(id.to_vec()) {
                    e.options_mut().insert(EdnsOption::NSID(p));
                }
            }
            if let Some(v) = cookie {
                e.options_mut()
                    .insert(EdnsOption::Unknown(OPT_COOKIE, v.reply.to_vec()));
            }
            // RFC 7828: over TCP, the idle time in units of 100 ms.
            if let (Transport::Tcp, Some(true), Some(idle)) =
                (transport, asked.keepalive, self.tcp_keepalive)
            {
                let units = u16::try_from(idle.as_millis() / 100).unwrap_or(u16::MAX);
                e.options_mut().insert(EdnsOption::Unknown(
                    OPT_KEEPALIVE,
                    units.to_be_bytes().to_vec(),
                ));
            }
            e
        });
        let ecs = opt.and_then(|o| o.ecs);
        let client = client_of(ecs, src);
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
            // The name, or the wildcard that stands for it (RFC 4592).
            let Some(node) = zone.nodes.get(&name).or_else(|| zone.wildcard_for(&name)) else {
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

fn client_of(ecs: Option<Ecs>, src: IpAddr) -> Client {
    let src = crate::geo::normalise_ip(src);
    // Source prefix 0: the resolver asks us not to use client information.
    let addr = match ecs {
        Some(e) if e.source_prefix > 0 => crate::geo::normalise_ip(e.address),
        _ => src,
    };
    Client { addr, ecs }
}
