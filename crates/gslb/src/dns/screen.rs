//! The screen: what the general path does with a query before any full
//! parse, in time linear in the few bytes a query needs and never more.
//! A query is a header, one question and at most a few additional
//! records (an OPT); anything else is answered at once or dropped:
//!
//! - shorter than a header, or a response: dropped (answering responses is
//!   how reflection loops start);
//! - an opcode other than QUERY: NOTIMP, the header alone with every flag
//!   but QR cleared and the opcode echoed (RFC 1035 defines RD, CD and AA
//!   for QUERY only; ISC's compliance test `opcodeflg` checks this);
//! - records in the answer or authority section, a question count other
//!   than one, a name with a compression pointer or an extended label in
//!   the question (there is nothing before it to point to), more than
//!   [`MAX_ADDITIONAL`] additional records or [`MAX_OPTIONS`] EDNS options,
//!   two OPT records, trailing bytes: FORMERR, with our OPT when the
//!   query's OPT was readable;
//! - EDNS version above 0: BADVERS, whatever else is wrong in its options
//!   (RFC 6891 §6.1.3);
//! - a malformed ECS option or COOKIE option: FORMERR with OPT (RFC 7871
//!   §6, RFC 7873 §5.2.2);
//! - no question but a COOKIE option: a cookie request (RFC 7873 §5.4).
//!
//! What passes is rebuilt as header, question and an OPT holding only the
//! ECS option (NSID, keepalive and the cookie are read here): the full parser then sees at most a
//! few hundred bytes, however large or hostile the packet was. No
//! compression pointer is ever followed.

use std::borrow::Cow;

use hickory_proto::op::ResponseCode;

use super::cookie::{QueryCookie, OPT_COOKIE};
use super::ecs::Ecs;

/// Additional records a query may carry (an OPT, and a TSIG or SIG(0)
/// boltz does not verify).
pub const MAX_ADDITIONAL: u16 = 3;
/// EDNS options a query may carry.
pub const MAX_OPTIONS: usize = 32;

/// The OPT pseudo-record's type.
pub const TYPE_OPT: u16 = 41;
/// RFC 5001.
pub const OPT_NSID: u16 = 3;
/// RFC 7871.
pub const OPT_ECS: u16 = 8;
/// RFC 7828.
pub const OPT_KEEPALIVE: u16 = 11;

/// The query's OPT record, as far as boltz uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opt {
    /// The client's UDP payload size.
    pub payload: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The client asked for our NSID.
    pub nsid: bool,
    /// A valid ECS option.
    pub ecs: Option<Ecs>,
    /// edns-tcp-keepalive (RFC 7828): `Some(true)` as a query must send
    /// it (empty), `Some(false)` with a timeout in it (FORMERR over TCP;
    /// UDP ignores the option).
    pub keepalive: Option<bool>,
    /// The first COOKIE option (RFC 7873), well formed.
    pub cookie: Option<QueryCookie>,
}

/// What the screen made of a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Screen<'a> {
    /// Not answered.
    Drop,
    /// Answered with this code at once. `question` is the question as
    /// sent when it was readable, `opt` the query's OPT when it was.
    Error {
        /// The response code (NOTIMP, FORMERR, BADVERS).
        rcode: ResponseCode,
        /// The question bytes to echo.
        question: Option<&'a [u8]>,
        /// The query's OPT (the reply then carries ours).
        opt: Option<Opt>,
    },
    /// A query with no question and a COOKIE option (RFC 7873 §5.4): it
    /// asks for a server cookie and nothing else.
    CookieOnly {
        /// The query's OPT, with its cookie.
        opt: Opt,
    },
    /// A query for the full parser.
    Query {
        /// Header, question and a minimal OPT.
        clean: Cow<'a, [u8]>,
        /// The question bytes as sent.
        question: &'a [u8],
        /// The query's OPT.
        opt: Option<Opt>,
    },
}

/// The big-endian u16 at `i`, if the bytes are there.
#[inline]
pub(super) fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Screens `q`.
pub fn screen(q: &[u8]) -> Screen<'_> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return Screen::Drop;
    }
    let formerr = |question, opt| Screen::Error {
        rcode: ResponseCode::FormErr,
        question,
        opt,
    };
    let (qd, an, ns, ar) = (
        u16_at(q, 4).unwrap_or(0),
        u16_at(q, 6).unwrap_or(0),
        u16_at(q, 8).unwrap_or(0),
        u16_at(q, 10).unwrap_or(0),
    );
    let opcode = (q[2] >> 3) & 0x0f;
    if opcode != 0 {
        // The OPT, if it is easy to find: a plain question, nothing but
        // additional records.
        let opt = (qd <= 1 && an == 0 && ns == 0 && ar <= MAX_ADDITIONAL)
            .then(|| walk(q, qd, ar).ok())
            .flatten()
            .and_then(|w| w.opt);
        return Screen::Error {
            rcode: ResponseCode::NotImp,
            question: None,
            opt: opt.map(|(o, at)| lenient(q, o, at)),
        };
    }
    if qd == 0 && an == 0 && ns == 0 && ar <= MAX_ADDITIONAL {
        return cookie_only(q, ar);
    }
    if qd != 1 || an != 0 || ns != 0 || ar > MAX_ADDITIONAL {
        return formerr(None, None);
    }
    let w = match walk(q, qd, ar) {
        Ok(w) => w,
        Err(at) => return formerr(at.question, at.opt),
    };
    let question = w.question;
    let Some((opt, opt_at)) = w.opt else {
        return Screen::Query {
            clean: clean(q, question, None),
            question,
            opt: None,
        };
    };
    if opt.version > 0 {
        return Screen::Error {
            rcode: ResponseCode::BADVERS,
            question: Some(question),
            opt: Some(lenient(q, opt, opt_at)),
        };
    }
    match options(q, opt, opt_at) {
        Ok((opt, kept)) => Screen::Query {
            clean: clean(q, question, Some((opt_at, &kept))),
            question,
            opt: Some(opt),
        },
        Err(opt) => formerr(Some(question), Some(opt)),
    }
}

/// A query without a question: a cookie request, or FORMERR.
fn cookie_only(q: &[u8], ar: u16) -> Screen<'_> {
    let formerr = |opt| Screen::Error {
        rcode: ResponseCode::FormErr,
        question: None,
        opt,
    };
    let Ok(Walked {
        opt: Some((opt, at)),
        ..
    }) = walk(q, 0, ar)
    else {
        return formerr(None);
    };
    if opt.version > 0 {
        return Screen::Error {
            rcode: ResponseCode::BADVERS,
            question: None,
            opt: Some(lenient(q, opt, at)),
        };
    }
    match options(q, opt, at) {
        Ok((opt, _)) if opt.cookie.is_some() => Screen::CookieOnly { opt },
        Ok((opt, _)) | Err(opt) => formerr(Some(opt)),
    }
}

/// Where the walk stopped, and what it had read.
struct Stopped<'a> {
    question: Option<&'a [u8]>,
    opt: Option<Opt>,
}

/// What the walk found: the question bytes, and the OPT with its offset.
struct Walked<'a> {
    question: &'a [u8],
    opt: Option<(Opt, usize)>,
}

/// Walks the question (no pointers) and `ar` additional records (their
/// names skipped, pointers not followed), to the end of the message.
fn walk(q: &[u8], qd: u16, ar: u16) -> Result<Walked<'_>, Stopped<'_>> {
    let mut stopped = Stopped {
        question: None,
        opt: None,
    };
    let mut pos = 12;
    if qd == 1 {
        pos = match question_end(q) {
            Some(p) => p,
            None => return Err(stopped),
        };
    }
    let question = &q[12..pos];
    stopped.question = (qd == 1).then_some(question);
    let mut opt = None;
    for _ in 0..ar {
        let Some(name_end) = skip_name(q, pos) else {
            return Err(stopped);
        };
        let (Some(rtype), Some(class), Some(rdlen)) = (
            u16_at(q, name_end),
            u16_at(q, name_end + 2),
            u16_at(q, name_end + 8),
        ) else {
            return Err(stopped);
        };
        let end = name_end + 10 + usize::from(rdlen);
        if end > q.len() {
            return Err(stopped);
        }
        if rtype == TYPE_OPT {
            // Two OPTs, or one not owned by the root: malformed (RFC 6891
            // §6.1.1).
            if opt.is_some() || name_end != pos + 1 || q[pos] != 0 {
                return Err(stopped);
            }
            let ttl = [
                q[name_end + 4],
                q[name_end + 5],
                q[name_end + 6],
                q[name_end + 7],
            ];
            let o = Opt {
                payload: class,
                version: ttl[1],
                dnssec_ok: ttl[2] & 0x80 != 0,
                nsid: false,
                ecs: None,
                keepalive: None,
                cookie: None,
            };
            stopped.opt = Some(o);
            opt = Some((o, pos));
        }
        pos = end;
    }
    if pos != q.len() {
        return Err(stopped);
    }
    Ok(Walked { question, opt })
}

/// The end of the question (name, type, class) at offset 12: plain labels
/// only, at most 255 bytes of name.
pub(super) fn question_end(q: &[u8]) -> Option<usize> {
    let mut pos = 12;
    loop {
        let len = usize::from(*q.get(pos)?);
        if len == 0 {
            break;
        }
        // Pointers (0xc0) and extended label types (0x40, 0x80).
        if len > 63 || pos + len + 1 - 12 > 254 {
            return None;
        }
        pos += len + 1;
    }
    let end = pos + 1 + 4;
    (end <= q.len()).then_some(end)
}

/// The end of a record's owner name: labels up to the root or the first
/// pointer, which is not followed.
pub(super) fn skip_name(q: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let len = *q.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return (pos + 2 <= q.len()).then_some(pos + 2),
            l if l & 0xc0 != 0 => return None,
            l => pos += 1 + usize::from(l),
        }
        if pos - start > 255 {
            return None;
        }
    }
}

/// The OPT's options: NSID and ECS read (ECS validated), every option's
/// length checked, at most [`MAX_OPTIONS`]. Returns the OPT and the
/// options kept for the full parser; on a malformed option, the OPT as far
/// as it was read.
fn options(q: &[u8], mut opt: Opt, at: usize) -> Result<(Opt, Vec<u8>), Opt> {
    let rdlen = usize::from(u16_at(q, at + 9).unwrap_or(0));
    let Some(rdata) = q.get(at + 11..at + 11 + rdlen) else {
        return Err(opt);
    };
    let mut kept = Vec::new();
    let (mut o, mut n) = (0, 0);
    while o < rdata.len() {
        n += 1;
        let (Some(code), Some(len)) = (u16_at(rdata, o), u16_at(rdata, o + 2)) else {
            return Err(opt);
        };
        let Some(data) = rdata.get(o + 4..o + 4 + usize::from(len)) else {
            return Err(opt);
        };
        if n > MAX_OPTIONS {
            return Err(opt);
        }
        match code {
            OPT_ECS => match (opt.ecs, Ecs::parse(data)) {
                (None, Some(e)) => {
                    opt.ecs = Some(e);
                    kept.extend_from_slice(&rdata[o..o + 4 + data.len()]);
                }
                _ => return Err(opt),
            },
            OPT_NSID => opt.nsid = true,
            OPT_KEEPALIVE => opt.keepalive = Some(data.is_empty()),
            // The first one counts; a malformed one is FORMERR (RFC 7873
            // §5.2.2).
            OPT_COOKIE if opt.cookie.is_none() => {
                opt.cookie = Some(QueryCookie::parse(data).ok_or(opt)?);
            }
            _ => {}
        }
        o += 4 + data.len();
    }
    Ok((opt, kept))
}

/// The OPT as far as its options can be read (for an error's reply).
fn lenient(q: &[u8], opt: Opt, at: usize) -> Opt {
    options(q, opt, at).map_or_else(|o| o, |(o, _)| o)
}

/// Header (counts: one question, the OPT if any), the question, and the
/// OPT with the `kept` options only.
fn clean<'a>(q: &'a [u8], question: &[u8], opt: Option<(usize, &[u8])>) -> Cow<'a, [u8]> {
    let whole = 12 + question.len();
    match opt {
        None if q.len() == whole => Cow::Borrowed(q),
        None => {
            let mut c = q[..whole].to_vec();
            c[10..12].fill(0);
            Cow::Owned(c)
        }
        Some((at, kept)) => {
            let mut c = Vec::with_capacity(whole + 11 + kept.len());
            c.extend_from_slice(&q[..whole]);
            c[10..12].copy_from_slice(&1u16.to_be_bytes());
            // Root, type, class, TTL as sent; our length.
            c.extend_from_slice(&q[at..at + 9]);
            c.extend_from_slice(&(kept.len() as u16).to_be_bytes());
            c.extend_from_slice(kept);
            Cow::Owned(c)
        }
    }
}

/// BADCOOKIE (RFC 7873 §5.2.3) to `q`, a query that passed the screen:
/// the question and our OPT with `cookie`, so the client can come back
/// with a valid server cookie.
pub fn badcookie_reply(q: &[u8], ours: u16, cookie: &[u8]) -> Vec<u8> {
    let question = question_end(q).map(|end| &q[12..end]);
    let opt = Opt::default();
    error_reply(
        q,
        ResponseCode::BADCOOKIE,
        question,
        Some(&opt),
        ours,
        None,
        Some(cookie),
    )
}

/// The type a question asks (its last four bytes are type and class).
pub fn qtype_of(question: &[u8]) -> Option<u16> {
    let n = question.len();
    u16_at(question, n.checked_sub(4)?)
}

/// The reply to a screened-out query: the header (ID; for QUERY also RD
/// and CD), the question when readable, and our OPT (payload `ours`,
/// `nsid` when asked, the `cookie` option data) when the query's was
/// readable.
pub fn error_reply(
    q: &[u8],
    rcode: ResponseCode,
    question: Option<&[u8]>,
    opt: Option<&Opt>,
    ours: u16,
    nsid: Option<&[u8]>,
    cookie: Option<&[u8]>,
) -> Vec<u8> {
    let query_op = q[2] & 0x78 == 0;
    let mut out = Vec::with_capacity(12 + question.map_or(0, <[u8]>::len) + 11);
    out.extend_from_slice(&q[..2]);
    // QR and the opcode; RD only where it is defined (QUERY).
    out.push(0x80 | (q[2] & 0x78) | if query_op { q[2] & 0x01 } else { 0 });
    out.push((rcode.low() & 0x0f) | if query_op { q[3] & 0x10 } else { 0 });
    out.extend_from_slice(&[0, u8::from(question.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some(qs) = question {
        out.extend_from_slice(qs);
    }
    if let Some(o) = opt {
        out[11] = 1;
        let p = ours.to_be_bytes();
        let options = [(OPT_NSID, nsid.filter(|_| o.nsid)), (OPT_COOKIE, cookie)];
        let rdlen: usize = options
            .iter()
            .flat_map(|(_, d)| d)
            .map(|d| 4 + d.len())
            .sum();
        out.extend_from_slice(&[0, 0, 41, p[0], p[1], rcode.high(), 0, 0, 0]);
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for (code, data) in options {
            if let Some(d) = data {
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(&(d.len() as u16).to_be_bytes());
                out.extend_from_slice(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
