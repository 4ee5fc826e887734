//! The anycast file (`boltz serve --anycast FILE`): which speaker, the
//! prefixes and the protocols that announce them, the self-probe and the
//! announcement rules. Every problem is a `file:line:col` diagnostic;
//! nothing is guessed.
//!
//! ```toml
//! speaker = "bird"                 # or "exabgp" (boltz anycast exabgp follows)
//! bird_socket = "/run/bird/bird.ctl"
//! rise = 2                         # good probes before announcing
//! fall = 2                         # bad probes before withdrawing
//! hold_down = "10s"                # least time withdrawn after ill health
//! drain_window = "30s"             # on the graceful-shutdown variant
//! stop_wait = "3s"                 # withdrawn but answering, on SIGTERM
//! drain_file = "/var/lib/boltz/anycast-drain"   # exists: drained
//!
//! [probe]
//! name = "probe.example.com."
//! type = "A"
//! expect = ["192.0.2.10"]          # optional: these must be in the answer
//!
//! [[prefix]]
//! prefix = "192.0.2.53/32"
//! protocol = "boltz_ns"            # static protocol, `disabled yes`
//! drain_protocol = "boltz_ns_drain"   # same route, tagged (65535, 0)
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boltz_core::diag::{Diagnostic, Diagnostics, Positions};
use boltz_core::duration::serde_duration;
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::announce::Rules;

/// Who speaks BGP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerKind {
    /// BIRD 2, driven over its control socket.
    Bird,
    /// ExaBGP, whose process `boltz anycast exabgp` reads `/v1/anycast`.
    Exabgp,
}

/// What a prefix's health is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// boltz answers the probe correctly on the prefix's address, over UDP
    /// and TCP.
    Dns,
    /// The site's `boltz l4` service on the prefix's address has a backend
    /// taking new flows (needs `--datacenter`).
    L4,
}

/// The self-probe: one query, and what the answer must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The name asked.
    pub name: Name,
    /// Its type.
    pub rtype: RecordType,
    /// Addresses the answer must contain (empty: any answer of the type).
    pub expect: Vec<IpAddr>,
    /// How long one query may take.
    pub timeout: Duration,
}

/// One announced prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The prefix (`192.0.2.53/32`).
    pub prefix: IpNet,
    /// The static protocol that announces it (empty with ExaBGP, which
    /// announces by prefix).
    pub protocol: String,
    /// The static protocol announcing it with the graceful-shutdown
    /// community, if any (without it a drain withdraws at once).
    pub drain_protocol: Option<String>,
    /// The address probed (default: the prefix's own address).
    pub address: IpAddr,
    /// What decides its health.
    pub check: Check,
}

/// The whole file, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// Who speaks BGP.
    pub speaker: SpeakerKind,
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// Between probes (and re-assertions).
    pub interval: Duration,
    /// Rise, fall, hold-down, drain window.
    pub rules: Rules,
    /// On SIGTERM: withdrawn but answering for this long, then stop.
    pub stop_wait: Duration,
    /// Run the guard that withdraws if this process dies or hangs.
    pub guard: bool,
    /// A hung process is one silent this long (the guard's view).
    pub guard_timeout: Duration,
    /// A file whose existence drains the prefixes (survives restarts).
    pub drain_file: Option<PathBuf>,
    /// The self-probe (for `check = "dns"` prefixes).
    pub probe: Option<Probe>,
    /// The prefixes.
    pub prefixes: Vec<Prefix>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    speaker: Option<Spanned<SpeakerKind>>,
    #[serde(default)]
    bird_socket: Option<PathBuf>,
    #[serde(default = "d_interval", with = "serde_duration")]
    interval: Duration,
    #[serde(default = "d_rise")]
    rise: Spanned<u32>,
    #[serde(default = "d_rise")]
    fall: Spanned<u32>,
    #[serde(default = "d_hold_down", with = "serde_duration")]
    hold_down: Duration,
    #[serde(default = "d_drain_window", with = "serde_duration")]
    drain_window: Duration,
    #[serde(default = "d_stop_wait", with = "serde_duration")]
    stop_wait: Duration,
    #[serde(default = "default_true")]
    guard: bool,
    #[serde(default = "d_guard_timeout", with = "serde_duration")]
    guard_timeout: Duration,
    #[serde(default)]
    drain_file: Option<PathBuf>,
    #[serde(default)]
    probe: Option<Spanned<RawProbe>>,
    #[serde(default)]
    prefix: Vec<Spanned<RawPrefix>>,
}

fn d_interval() -> Duration {
    Duration::from_secs(1)
}
fn d_rise() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}
fn d_hold_down() -> Duration {
    Duration::from_secs(10)
}
fn d_drain_window() -> Duration {
    Duration::from_secs(30)
}
fn d_stop_wait() -> Duration {
    Duration::from_secs(3)
}
fn d_guard_timeout() -> Duration {
    Duration::from_secs(1)
}
fn d_timeout() -> Duration {
    Duration::from_millis(500)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: Spanned<String>,
    #[serde(rename = "type", default = "d_type")]
    rtype: Spanned<String>,
    #[serde(default)]
    expect: Vec<Spanned<String>>,
    #[serde(default = "d_timeout", with = "serde_duration")]
    timeout: Duration,
}

fn d_type() -> Spanned<String> {
    Spanned::new(0..0, "A".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefix {
    prefix: Spanned<String>,
    #[serde(default)]
    protocol: Option<Spanned<String>>,
    #[serde(default)]
    drain_protocol: Option<Spanned<String>>,
    #[serde(default)]
    address: Option<Spanned<String>>,
    #[serde(default)]
    check: Option<Spanned<Check>>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read the anycast file: {e}"),
        }])
    })?;
    parse(path, &text)
}

/// Checks `text`, the content of `file`.
pub fn parse(file: &Path, text: &str) -> Result<Config, Diagnostics> {
    let pos = Positions::new(file, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        Diagnostics(vec![pos.at(span, e.message().to_string())])
    })?;
    let mut errs = Vec::new();
    let speaker = raw
        .speaker
        .as_ref()
        .map_or(SpeakerKind::Bird, |s| *s.get_ref());
    for (v, what) in [(&raw.rise, "rise"), (&raw.fall, "fall")] {
        if *v.get_ref() == 0 {
            errs.push(pos.at(v.span(), format!("{what} must be at least 1")));
        }
    }
    if raw.interval < Duration::from_millis(100) {
        errs.push(pos.at(0..0, "interval must be at least 100ms"));
    }
    let probe = raw.probe.as_ref().and_then(|p| {
        let span = p.span();
        let p = p.get_ref();
        let name = Name::from_ascii(p.name.get_ref())
            .map_err(|e| errs.push(pos.at(p.name.span(), format!("probe name: {e}"))))
            .ok()?;
        if !name.is_fqdn() {
            errs.push(pos.at(
                p.name.span(),
                "probe name must be absolute (end with a dot)",
            ));
        }
        let rtype = match p.rtype.get_ref().to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::AAAA,
            "SOA" => RecordType::SOA,
            "NS" => RecordType::NS,
            "TXT" => RecordType::TXT,
            other => {
                errs.push(pos.at(
                    p.rtype.span(),
                    format!("probe type {other:?}: use A, AAAA, SOA, NS or TXT"),
                ));
                return None;
            }
        };
        let mut expect = Vec::new();
        for e in &p.expect {
            match e.get_ref().parse::<IpAddr>() {
                Ok(a)
                    if matches!(rtype, RecordType::A | RecordType::AAAA)
                        && (rtype == RecordType::A) == a.is_ipv4() =>
                {
                    expect.push(a)
                }
                Ok(_) => errs.push(pos.at(
                    e.span(),
                    format!("expected address {} does not fit type {rtype}", e.get_ref()),
                )),
                Err(_) => errs.push(pos.at(e.span(), format!("not an address: {:?}", e.get_ref()))),
            }
        }
        if p.timeout.is_zero() || p.timeout > raw.interval {
            errs.push(pos.at(
                span,
                "probe timeout must be above 0 and at most the interval",
            ));
        }
        Some(Probe {
            name,
            rtype,
            expect,
            timeout: p.timeout,
        })
    });
    if raw.prefix.is_empty() {
        errs.push(pos.at(0..0, "no [[prefix]]: nothing to announce"));
    }
    let mut protocols = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut prefixes = Vec::new();
    for p in &raw.prefix {
        let p = p.get_ref();
        let Ok(net) = p.prefix.get_ref().parse::<IpNet>() else {
            errs.push(pos.at(
                p.prefix.span(),
                format!(
                    "not a prefix: {:?} (e.g. \"192.0.2.53/32\")",
                    p.prefix.get_ref()
                ),
            ));
            continue;
        };
        if net != net.trunc() {
            errs.push(pos.at(
                p.prefix.span(),
                format!("{net} has host bits set; the prefix is {}", net.trunc()),
            ));
        }
        if !seen.insert(net) {
            errs.push(pos.at(p.prefix.span(), format!("{net} is declared twice")));
        }
        // BIRD needs the protocols; ExaBGP announces by prefix.
        if speaker == SpeakerKind::Bird && p.protocol.is_none() {
            errs.push(pos.at(
                p.prefix.span(),
                format!("{net} has no protocol: the BIRD static protocol that announces it"),
            ));
        }
        for name in p.protocol.iter().chain(p.drain_protocol.as_ref()) {
            if !valid_protocol(name.get_ref()) {
                errs.push(pos.at(
                    name.span(),
                    format!(
                        "{:?} is not a BIRD protocol name (letters, digits, _)",
                        name.get_ref()
                    ),
                ));
            } else if !protocols.insert(name.get_ref().clone()) {
                errs.push(pos.at(
                    name.span(),
                    format!(
                        "protocol {} is used twice; each prefix and variant has its own",
                        name.get_ref()
                    ),
                ));
            }
        }
        let address = match &p.address {
            None => net.addr(),
            Some(a) => match a.get_ref().parse::<IpAddr>() {
                Ok(ip) if net.contains(&ip) => ip,
                Ok(ip) => {
                    errs.push(pos.at(a.span(), format!("{ip} is not in {net}")));
                    continue;
                }
                Err(_) => {
                    errs.push(pos.at(a.span(), format!("not an address: {:?}", a.get_ref())));
                    continue;
                }
            },
        };
        let check = p.check.as_ref().map_or(Check::Dns, |c| *c.get_ref());
        if check == Check::Dns && probe.is_none() && raw.probe.is_none() {
            errs.push(pos.at(
                p.prefix.span(),
                format!("{net} is checked by the DNS self-probe, but the file has no [probe]"),
            ));
        }
        prefixes.push(Prefix {
            prefix: net,
            protocol: p
                .protocol
                .as_ref()
                .map_or_else(String::new, |n| n.get_ref().clone()),
            drain_protocol: p.drain_protocol.as_ref().map(|d| d.get_ref().clone()),
            address,
            check,
        });
    }
    if raw.guard_timeout < Duration::from_millis(500) {
        errs.push(pos.at(0..0, "guard_timeout must be at least 500ms"));
    }
    if speaker == SpeakerKind::Bird && raw.bird_socket.is_none() {
        let span = raw.speaker.as_ref().map_or(0..0, |s| s.span());
        errs.push(pos.at(span, "speaker \"bird\" needs bird_socket (BIRD's -s path)"));
    }
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    Ok(Config {
        file: file.to_path_buf(),
        speaker,
        bird_socket: raw.bird_socket.unwrap_or_default(),
        interval: raw.interval,
        rules: Rules {
            rise: *raw.rise.get_ref(),
            fall: *raw.fall.get_ref(),
            hold_down: raw.hold_down,
            drain_window: raw.drain_window,
        },
        stop_wait: raw.stop_wait,
        guard: raw.guard && speaker == SpeakerKind::Bird,
        guard_timeout: raw.guard_timeout,
        drain_file: raw.drain_file,
        probe,
        prefixes,
    })
}

/// BIRD's symbol rule: a letter or `_`, then letters, digits and `_`.
fn valid_protocol(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests;
