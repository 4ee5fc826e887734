//! Response rate limiting (RRL), with the semantics operators know from
//! BIND and Knot: UDP responses to one client prefix (/24, /56) are
//! limited per response class — answers (per name and type), NXDOMAIN,
//! errors, referrals — to a rate with a burst. A limited response is
//! dropped, except every `slip`-th, which goes out truncated (TC, no
//! records) so a real client behind a spoofed flood retries over TCP.
//! Queries with a valid server cookie (the client proved its address)
//! and exempt networks are never limited; `log_only` counts and logs
//! without limiting. TCP is never limited.
//!
//! Lock-free: a table of 2^16 atomic words, each a key's 16-bit tag and
//! its theoretical arrival time (GCRA) in microseconds, updated with one
//! compare-and-swap, and beside it each slot's count of limited responses
//! (every `slip`-th of a bucket's is slipped). Keys that share a slot evict each other, which
//! can only let a response through, never limit an innocent one more.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use boltz_core::hash::{fnv1a, mix, FNV_OFFSET};
use hickory_proto::op::ResponseCode;
use ipnet::IpNet;

use super::ecs::mask;
use super::screen::{question_end, skip_name, u16_at};

/// A response class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Records or NODATA.
    Answer,
    /// NXDOMAIN.
    Nxdomain,
    /// REFUSED, FORMERR, SERVFAIL, NOTIMP, BADVERS, ...
    Error,
    /// A delegation.
    Referral,
}

impl Class {
    /// Every class, in the order of [`RrlConfig::rates`].
    pub const ALL: [Class; 4] = [
        Class::Answer,
        Class::Nxdomain,
        Class::Error,
        Class::Referral,
    ];

    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Class::Answer => "answer",
            Class::Nxdomain => "nxdomain",
            Class::Error => "error",
            Class::Referral => "referral",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The class of a response: its (extended) `rcode`, and AA and the
    /// counts from its header.
    pub fn of(rcode: ResponseCode, resp: &[u8]) -> Class {
        let aa = resp.get(2).is_some_and(|b| b & 0x04 != 0);
        let count = |i: usize| {
            resp.get(i..i + 2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
        };
        match rcode {
            ResponseCode::NoError if !aa && count(6) == 0 && count(8) > 0 => Class::Referral,
            ResponseCode::NoError => Class::Answer,
            ResponseCode::NXDomain => Class::Nxdomain,
            _ => Class::Error,
        }
    }
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send it.
    Send,
    /// Limited: send nothing.
    Drop,
    /// Limited, but send it truncated (TC) so the client retries on TCP.
    Slip,
}

/// The limiter's settings (`boltz serve --rrl-*`).
#[derive(Clone, Debug, PartialEq)]
pub struct RrlConfig {
    /// Responses per second per prefix and class, in [`Class::ALL`]
    /// order; 0 leaves a class unlimited.
    pub rates: [u32; 4],
    /// Responses beyond the rate allowed at once, in seconds of rate.
    pub burst_seconds: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops all.
    pub slip: u32,
    /// The prefix a client is counted by.
    pub ipv4_prefix: u8,
    /// Likewise for IPv6.
    pub ipv6_prefix: u8,
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
    /// Count and log what would be limited, limit nothing.
    pub log_only: bool,
}

const SLOTS: usize = 1 << 16;
const TAG_SHIFT: u32 = 48;
const TIME_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// The limiter.
pub struct Rrl {
    cfg: RrlConfig,
    /// Per class: microseconds between responses, and the tolerance.
    gcra: [(u64, u64); 4],
    table: Box<[AtomicU64]>,
    start: Instant,
    /// Per slot: limited responses, for every `slip`-th (a bucket's own
    /// count, as BIND keeps it).
    limited: Box<[AtomicU32]>,
    /// The second of the last log line (log-only mode logs once a second).
    logged: AtomicU64,
}

impl Rrl {
    /// A limiter for `cfg`.
    pub fn new(cfg: RrlConfig) -> Rrl {
        let gcra = cfg.rates.map(|r| {
            if r == 0 {
                (0, 0)
            } else {
                let t = (1_000_000 / u64::from(r)).max(1);
                (t, t * u64::from(r) * u64::from(cfg.burst_seconds.max(1)))
            }
        });
        Rrl {
            cfg,
            gcra,
            table: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            start: Instant::now(),
            limited: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            logged: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether a log line may be written now (at most one a second).
    pub fn should_log(&self) -> bool {
        let sec = self.start.elapsed().as_secs();
        self.logged.swap(sec, Ordering::Relaxed) != sec
    }

    /// Whether `src` is never limited.
    pub fn exempt(&self, src: IpAddr) -> bool {
        self.cfg.exempt.iter().any(|n| n.contains(&src))
    }

    /// The decision on one UDP response of `class` to `src`. `name` is
    /// the hash of what the class is counted by besides the prefix: the
    /// question for answers ([`question_hash`]), the zone or delegation
    /// for NXDOMAIN and referrals ([`authority_hash`]); errors ignore it.
    pub fn check(&self, src: IpAddr, class: Class, name: u64, now: Instant) -> Decision {
        let (t, tau) = self.gcra[class.index()];
        if t == 0 {
            return Decision::Allowed;
        }
        let key = self.key(src, class, name);
        let index = (key as usize) & (SLOTS - 1);
        let slot = &self.table[index];
        let tag = key >> TAG_SHIFT;
        let now_us = (now.saturating_duration_since(self.start).as_micros() as u64) & TIME_MASK;
        // Offset by tau so "never seen" (0) is always in the past.
        let now_us = now_us + tau;
        let mut cur = slot.load(Ordering::Relaxed);
        for _ in 0..4 {
            let tat = if cur >> TAG_SHIFT == tag {
                (cur & TIME_MASK).max(now_us)
            } else {
                now_us
            };
            if tat - now_us > tau {
                return self.limited(index);
            }
            let new = (tag << TAG_SHIFT) | ((tat + t) & TIME_MASK);
            match slot.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Decision::Allowed,
                Err(seen) => cur = seen,
            }
        }
        // Contended: let it through rather than spin.
        Decision::Allowed
    }

    fn limited(&self, index: usize) -> Decision {
        if self.cfg.log_only {
            return Decision::Would;
        }
        let n = self.limited[index]
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if self.cfg.slip > 0 && n % self.cfg.slip == 0 {
            Decision::Limited(Action::Slip)
        } else {
            Decision::Limited(Action::Drop)
        }
    }

    /// The bucket's key: the client's prefix, the class, and the `name`
    /// hash of what the class is counted by (none for errors).
    fn key(&self, src: IpAddr, class: Class, name: u64) -> u64 {
        let (bits, family) = match crate::geo::normalise_ip(src) {
            a @ IpAddr::V4(_) => (mask(a, self.cfg.ipv4_prefix), 4),
            a => (mask(a, self.cfg.ipv6_prefix), 6),
        };
        let bits = match bits {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let name = if class == Class::Error { 0 } else { name };
        let prefix = mix((bits >> 64) as u64, bits as u64);
        mix(mix(prefix, family << 8 | class as u64), name)
    }
}

/// The limiter's word on one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Within the rate (or exempt, or its class unlimited).
    Allowed,
    /// Over the rate, in log-only mode: sent.
    Would,
    /// Over the rate: dropped or slipped.
    Limited(Action),
}

/// The hash of a query's question (lower-cased name, type), or 0 when it
/// cannot be read: the name part of an answer's key.
pub fn question_hash(q: &[u8]) -> u64 {
    let (Some(name), Some(end)) = (name_hash(q, 12), question_end(q)) else {
        return 0;
    };
    mix(name, u64::from(u16_at(q, end - 4).unwrap_or(0)))
}

/// The hash of a response's first authority owner — the zone's SOA of
/// an NXDOMAIN, the delegation point of a referral — or 0 when there is
/// none: NXDOMAIN and referrals are counted per prefix and zone, as BIND
/// does, so a random-subdomain flood against one zone does not limit a
/// resolver's NXDOMAINs for another. `resp` is a response boltz wrote.
pub fn authority_hash(resp: &[u8]) -> u64 {
    let count = |i: usize| usize::from(u16_at(resp, i).unwrap_or(0));
    if count(8) == 0 {
        return 0;
    }
    let mut pos = 12;
    for _ in 0..count(4) {
        let Some(end) = skip_name(resp, pos) else {
            return 0;
        };
        pos = end + 4;
    }
    for _ in 0..count(6) {
        let Some(end) = skip_name(resp, pos) else {
            return 0;
        };
        pos = end + 10 + count(end + 8);
    }
    name_hash(resp, pos).unwrap_or(0)
}

/// The case-blind hash of the name at `pos`, following at most a few
/// compression pointers.
fn name_hash(m: &[u8], mut pos: usize) -> Option<u64> {
    let mut h = FNV_OFFSET;
    for _ in 0..8 {
        loop {
            let len = *m.get(pos)?;
            if len == 0 {
                return Some(h);
            }
            if len & 0xc0 == 0xc0 {
                pos = usize::from(u16::from_be_bytes([len & 0x3f, *m.get(pos + 1)?]));
                break;
            }
            for &b in m.get(pos + 1..pos + 1 + usize::from(len))? {
                h = fnv1a(h, &[b.to_ascii_lowercase()]);
            }
            h = fnv1a(h, b".");
            pos += 1 + usize::from(len);
        }
    }
    None
}

/// Turns the response in `out` into its slipped form: the header with TC
/// set and no records, the question kept (the client retries over TCP).
pub fn slip(out: &mut Vec<u8>) {
    if out.len() < 12 {
        return;
    }
    let end = (u16_at(out, 4) == Some(1))
        .then(|| question_end(out))
        .flatten();
    out.truncate(end.unwrap_or(12));
    out[2] |= 0x02;
    if end.is_none() {
        out[4..6].fill(0);
    }
    out[6..12].fill(0);
}

#[cfg(test)]
mod tests;
