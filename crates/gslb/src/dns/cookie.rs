//! DNS cookies, server side (RFC 7873), with the interoperable server
//! cookie of RFC 9018, so anycast sites sharing a secret accept each
//! other's cookies:
//!
//! ```text
//! server cookie = Version (1) | Reserved (3) | Timestamp (4, seconds)
//!                 | SipHash-2-4(client cookie | Version | Reserved
//!                               | Timestamp | client IP, secret) (8)
//! ```
//!
//! A server cookie is good for an hour (and five minutes of clock skew
//! the other way); past half an hour the answer carries a fresh one.
//! Two secrets are held, the current one (new cookies) and the previous
//! one (still accepted), so a rotation does not turn clients away. The
//! rate limiter exempts queries that carry a good server cookie: the
//! client has proved it receives at its address.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// The COOKIE option code.
pub const OPT_COOKIE: u16 = 10;
/// A server cookie older than this is no longer taken.
const MAX_AGE: u32 = 3600;
/// Nor one stamped further than this in the future.
const MAX_SKEW: u32 = 300;
/// Past this age the answer carries a fresh one.
const RENEW_AGE: u32 = 1800;

/// A COOKIE option from a query: the client cookie and what came as the
/// server cookie (8 to 32 bytes, maybe none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCookie {
    /// The client cookie.
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl QueryCookie {
    /// The option's data; `None` for a length RFC 7873 §5.2.2 calls
    /// malformed (FORMERR).
    pub fn parse(d: &[u8]) -> Option<QueryCookie> {
        if d.len() != 8 && !(16..=40).contains(&d.len()) {
            return None;
        }
        let mut c = QueryCookie {
            client: d[..8].try_into().ok()?,
            server: [0; 32],
            server_len: (d.len() - 8) as u8,
        };
        c.server[..d.len() - 8].copy_from_slice(&d[8..]);
        Some(c)
    }

    /// The server cookie as sent.
    pub fn server(&self) -> &[u8] {
        &self.server[..usize::from(self.server_len)]
    }
}

/// A secret, as SipHash's key.
pub type Secret = [u8; 16];

/// The secrets: the current one makes cookies; both are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secrets {
    /// Makes new cookies.
    pub current: Secret,
    /// Accepted still (the one before a rotation).
    pub previous: Option<Secret>,
}

/// The server's cookie state, shared by every worker.
#[derive(Debug)]
pub struct Cookies {
    secrets: ArcSwap<Secrets>,
}

/// What a query's cookie is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The query carried a server cookie of ours, in its time.
    pub valid: bool,
    /// The query carried a server cookie at all.
    pub presented: bool,
    /// The option for the answer: the client cookie and a server cookie.
    pub reply: [u8; 24],
}

impl Cookies {
    /// Cookies made with `secrets`.
    pub fn new(secrets: Secrets) -> Cookies {
        Cookies {
            secrets: ArcSwap::from_pointee(secrets),
        }
    }

    /// Cookies with a random secret (a server of its own; sites that
    /// share cookies share a secret file).
    pub fn random() -> Cookies {
        Cookies::new(Secrets {
            current: random_secret(),
            previous: None,
        })
    }

    /// Replaces the secrets (a rotation, or a changed secret file).
    pub fn set(&self, secrets: Secrets) {
        self.secrets.store(Arc::new(secrets));
    }

    /// The secrets in use.
    pub fn secrets(&self) -> Secrets {
        **self.secrets.load()
    }

    /// Judges `c` from `ip` at `now` (Unix seconds) and makes the option
    /// for the answer: the server cookie it brought when that is ours and
    /// younger than half an hour, else a new one.
    pub fn judge(&self, c: &QueryCookie, ip: IpAddr, now: u32) -> Verdict {
        let s = self.secrets.load();
        let mut reply = [0u8; 24];
        reply[..8].copy_from_slice(&c.client);
        let server = c.server();
        let valid = server.len() == 16
            && server[0] == 1
            && usable(stamp(server), now)
            && std::iter::once(&s.current)
                .chain(s.previous.as_ref())
                .any(|k| hash(k, &c.client, &server[..8], ip) == server[8..16]);
        if valid && now.wrapping_sub(stamp(server)) < RENEW_AGE && !ahead(stamp(server), now) {
            reply[8..].copy_from_slice(server);
        } else {
            reply[8..].copy_from_slice(&make(&s.current, &c.client, ip, now));
        }
        Verdict {
            valid,
            presented: !server.is_empty(),
            reply,
        }
    }
}

/// Now, in Unix seconds: the cookies' clock (mod 2^32 on purpose, as
/// their timestamps are). The coarse clock: seconds are all a cookie
/// needs, and it costs a few nanoseconds where a precise read costs
/// twenty, on every query that carries a cookie.
pub fn unix_seconds() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec passed.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        return ts.tv_sec as u32;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// The timestamp of a server cookie.
fn stamp(server: &[u8]) -> u32 {
    u32::from_be_bytes([server[4], server[5], server[6], server[7]])
}

/// Stamped in the future (serial arithmetic, RFC 1982).
fn ahead(ts: u32, now: u32) -> bool {
    let d = ts.wrapping_sub(now);
    d != 0 && d < 1 << 31
}

/// Within an hour in the past or five minutes in the future.
fn usable(ts: u32, now: u32) -> bool {
    if ahead(ts, now) {
        ts.wrapping_sub(now) <= MAX_SKEW
    } else {
        now.wrapping_sub(ts) <= MAX_AGE
    }
}

/// A new server cookie: version 1, reserved 0, `now`, the hash.
pub fn make(secret: &Secret, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = 1;
    out[4..8].copy_from_slice(&now.to_be_bytes());
    let h = hash(secret, client, &out[..8], ip);
    out[8..].copy_from_slice(&h);
    out
}

/// SipHash-2-4 of client cookie, the first 8 bytes of the server cookie
/// and the client address, as its 8 bytes (RFC 9018 §4.4).
fn hash(secret: &Secret, client: &[u8; 8], head: &[u8], ip: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(head);
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&a.octets()),
        },
    }
    h.finish().to_le_bytes()
}

/// 16 random bytes.
pub fn random_secret() -> Secret {
    let mut s = [0u8; 16];
    if getrandom::fill(&mut s).is_err() {
        // No entropy source: the clock and the process id, which is
        // weak, but a server with no secret could hand out no cookie.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mix = t ^ (u128::from(std::process::id()) << 64);
        s.copy_from_slice(&mix.to_le_bytes());
    }
    s
}

/// Reads a secret file: one secret per line in hex (32 digits), the
/// current first, the previous (optional) second; `#` comments.
pub fn read_secrets(text: &str) -> Result<Secrets, String> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let bytes = (0..l.len())
            .step_by(2)
            .map(|j| l.get(j..j + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>();
        match bytes.and_then(|b| Secret::try_from(b).ok()) {
            Some(k) => keys.push(k),
            None => {
                return Err(format!(
                    "line {}: a secret is 32 hex digits (16 bytes), not {l:?}",
                    i + 1
                ))
            }
        }
    }
    match keys.as_slice() {
        [current] => Ok(Secrets {
            current: *current,
            previous: None,
        }),
        [current, previous] => Ok(Secrets {
            current: *current,
            previous: Some(*previous),
        }),
        [] => Err("no secret in the file".into()),
        _ => Err("more than two secrets (the current one, then the previous)".into()),
    }
}

#[cfg(test)]
mod tests;
