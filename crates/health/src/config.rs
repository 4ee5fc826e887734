//! The `health = { … }` table of a datacenter in a zone file: what to probe,
//! how often, and how many results in a row flip the state. Deserialising
//! only checks the shape; [`HealthConfig::validate`] reports every semantic
//! problem at once so an operator can fix a zone file in one pass.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use boltz_core::duration::{format_duration, serde_duration};

/// How much of an HTTP body a check reads, so a misbehaving endpoint
/// cannot make it allocate without bound (and the longest `body` a check
/// can look for).
pub const MAX_BODY: usize = 64 * 1024;

/// One datacenter's health check, e.g.
/// `health = { http = "http://127.0.0.1:8080/healthz", expect = [200, 204], body = "ok" }`
/// or `health = { tcp = "127.0.0.1:443", interval = "2s", rise = 1, fall = 2 }`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// URL for an HTTP(S) GET check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` for a TCP connect check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Accepted HTTP statuses; `None` accepts 200–399 (redirects are not
    /// followed, so a 3xx means the server answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<u16>>,
    /// Substring the first 64 KiB of the HTTP body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `Host` header to send instead of the URL's authority, for checking a
    /// virtual host through an address-only URL. TLS SNI and certificate
    /// checks still use the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default = "default_interval", with = "serde_duration")]
    /// Time between the starts of two checks.
    pub interval: Duration,
    /// Bound on one whole check (connect, headers and body); read it through
    /// [`HealthConfig::timeout`], which supplies the default.
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Consecutive successes that bring a down DC back up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up DC down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Random spread of each interval as a fraction of it (0.1 = ±10%), so
    /// that checks from many DNS nodes do not arrive in lockstep.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Whether HTTPS checks verify the certificate; off for self-signed
    /// origins that are reached by address.
    #[serde(default = "default_tls_verify")]
    pub tls_verify: bool,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
/// The default timeout, cut to half the interval for intervals of 4s or less
/// so that a short `interval` alone is a valid config.
fn default_timeout(interval: Duration) -> Duration {
    Duration::from_secs(2).min(interval / 2)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_jitter() -> f64 {
    0.1
}
fn default_tls_verify() -> bool {
    true
}

/// The statuses an HTTP check accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect<'a> {
    /// No `expect` given: any 2xx or 3xx.
    Default,
    /// Exactly these statuses.
    Codes(&'a [u16]),
}

impl Expect<'_> {
    /// Whether `status` passes.
    pub fn contains(self, status: u16) -> bool {
        match self {
            Expect::Default => (200..=399).contains(&status),
            Expect::Codes(codes) => codes.contains(&status),
        }
    }
}

impl fmt::Display for Expect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Expect::Default => f.write_str("200-399"),
            Expect::Codes(codes) => write!(f, "{codes:?}"),
        }
    }
}

/// What one check does, with the URL already parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthTarget<'a> {
    /// A GET whose status (and optionally body) decides.
    Http {
        /// What to GET.
        url: Url,
        /// Statuses that pass.
        expect: Expect<'a>,
        /// A substring the body must contain.
        body: Option<&'a str>,
        /// `Host` header to send instead of the URL's.
        host: Option<&'a str>,
        /// Check the server's certificate (HTTPS).
        tls_verify: bool,
    },
    /// A TCP connect that succeeds in time passes.
    Tcp {
        /// `host:port` to connect to.
        addr: &'a str,
    },
}

impl HealthConfig {
    /// An HTTP check of `url` with every other setting at its default (as
    /// a TOML table with only `http` gives).
    pub fn http(url: String) -> HealthConfig {
        HealthConfig {
            http: Some(url),
            tcp: None,
            expect: None,
            body: None,
            host: None,
            interval: default_interval(),
            timeout: None,
            rise: default_rise(),
            fall: default_fall(),
            jitter: default_jitter(),
            tls_verify: default_tls_verify(),
        }
    }

    /// The configured timeout, or 2s cut to half the interval when that is
    /// shorter.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| default_timeout(self.interval))
    }

    /// The check to run, or the first reason there is none. Zone loading
    /// calls [`Self::validate`] first, so this only fails on configs that
    /// skipped validation.
    pub fn target(&self) -> Result<HealthTarget<'_>, String> {
        match (&self.http, &self.tcp) {
            (Some(url), None) => Ok(HealthTarget::Http {
                url: parse_http_url("health.http", url)?,
                expect: self
                    .expect
                    .as_deref()
                    .map_or(Expect::Default, Expect::Codes),
                body: self.body.as_deref(),
                host: self.host.as_deref(),
                tls_verify: self.tls_verify,
            }),
            (None, Some(addr)) => {
                check_host_port("health.tcp", addr)?;
                Ok(HealthTarget::Tcp { addr })
            }
            _ => Err(ONE_OF.to_owned()),
        }
    }

    /// Every problem with this config, each naming its field; empty when the
    /// config is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match (&self.http, &self.tcp) {
            (Some(url), None) => errs.extend(parse_http_url("health.http", url).err()),
            (None, Some(addr)) => {
                errs.extend(check_host_port("health.tcp", addr).err());
                for (field, set) in [
                    ("expect", self.expect.is_some()),
                    ("body", self.body.is_some()),
                    ("host", self.host.is_some()),
                ] {
                    if set {
                        errs.push(format!("health.{field} applies only to `http` checks"));
                    }
                }
            }
            _ => errs.push(ONE_OF.to_owned()),
        }
        if let Some(codes) = &self.expect {
            if codes.is_empty() {
                errs.push("health.expect must list at least one status".to_owned());
            }
            if let Some(bad) = codes.iter().find(|c| !(100..=599).contains(*c)) {
                errs.push(format!(
                    "health.expect: {bad} is not an HTTP status (100-599)"
                ));
            }
        }
        if let Some(body) = &self.body {
            if body.is_empty() {
                errs.push("health.body must not be empty".to_owned());
            } else if body.len() > MAX_BODY {
                errs.push(format!(
                    "health.body is longer than the {} bytes a check reads",
                    MAX_BODY
                ));
            }
        }
        if let Some(host) = &self.host {
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_graphic()) {
                errs.push(format!("health.host: {host:?} is not a valid Host header"));
            }
        }
        if self.interval.is_zero() {
            errs.push("health.interval must be greater than 0".to_owned());
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            errs.push("health.timeout must be greater than 0".to_owned());
        } else if !self.interval.is_zero() && self.timeout() >= self.interval {
            errs.push(format!(
                "health.timeout ({}) must be shorter than health.interval ({})",
                format_duration(self.timeout()),
                format_duration(self.interval)
            ));
        }
        if self.rise < 1 {
            errs.push("health.rise must be ≥ 1".to_owned());
        }
        if self.fall < 1 {
            errs.push("health.fall must be ≥ 1".to_owned());
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            errs.push(format!(
                "health.jitter must be between 0 and 0.5 (a fraction of the interval), got {}",
                self.jitter
            ));
        }
        errs
    }
}

const ONE_OF: &str = "health: set exactly one of `http` or `tcp`";

/// Parses an `http`/`https` URL with a host; shared with the load feed's
/// `url`. `field` prefixes the message.
pub fn parse_http_url(field: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{field}: invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{field}: invalid URL {text:?}: scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{field}: invalid URL {text:?}: no host"));
    }
    Ok(url)
}

/// Accepts `ip:port`, `[ipv6]:port` or `hostname:port`; the name is resolved
/// at every check so a moved service is followed.
fn check_host_port(field: &str, text: &str) -> Result<(), String> {
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("{field}: expected host:port (IPv6 as [addr]:port), got {text:?}");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    match port.parse::<u16>() {
        Ok(p) if p != 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Dc {
        health: HealthConfig,
    }

    fn parse(table: &str) -> Result<HealthConfig, String> {
        toml::from_str::<Dc>(&format!("health = {table}"))
            .map(|dc| dc.health)
            .map_err(|e| e.to_string())
    }

    fn problems(table: &str) -> Vec<String> {
        parse(table).unwrap().validate()
    }

    #[test]
    fn full_http_table() {
        let cfg = parse(
            "{ http = \"http://127.0.0.1:8080/healthz\", expect = [200, 204], body = \"ok\", \
             host = \"www.example.com\", interval = \"5s\", timeout = \"2s\", rise = 2, \
             fall = 3, jitter = 0.1, tls_verify = true }",
        )
        .unwrap();
        assert_eq!(cfg.validate(), Vec::<String>::new());
        assert_eq!(cfg.expect.as_deref(), Some(&[200, 204][..]));
        let codes = [200, 204];
        assert_eq!(
            cfg.target().unwrap(),
            HealthTarget::Http {
                url: "http://127.0.0.1:8080/healthz".parse().unwrap(),
                expect: Expect::Codes(&codes),
                body: Some("ok"),
                host: Some("www.example.com"),
                tls_verify: true,
            }
        );
        let expect = Expect::Codes(&codes);
        assert!(expect.contains(204) && !expect.contains(302));
        assert_eq!(expect.to_string(), "[200, 204]");
    }

    #[test]
    fn tcp_table_and_defaults() {
        let cfg =
            parse(r#"{ tcp = "127.0.0.1:443", interval = "2s", rise = 1, fall = 2 }"#).unwrap();
        assert_eq!(cfg.validate(), Vec::<String>::new());
        assert_eq!(
            cfg.target().unwrap(),
            HealthTarget::Tcp {
                addr: "127.0.0.1:443"
            }
        );
        assert_eq!(cfg.interval, Duration::from_secs(2));
        assert_eq!(cfg.timeout(), Duration::from_secs(1));
        assert_eq!((cfg.rise, cfg.fall), (1, 2));

        let cfg = parse(r#"{ http = "https://example.com/" }"#).unwrap();
        assert_eq!(cfg.interval, Duration::from_secs(5));
        assert_eq!(cfg.timeout(), Duration::from_secs(2));
        assert_eq!((cfg.rise, cfg.fall, cfg.jitter), (2, 3, 0.1));
        assert!(cfg.tls_verify);
        let HealthTarget::Http { expect, .. } = cfg.target().unwrap() else {
            panic!("not http")
        };
        assert_eq!(expect, Expect::Default);
        assert!(expect.contains(200) && expect.contains(399) && !expect.contains(400));
        assert_eq!(expect.to_string(), "200-399");
    }

    #[test]
    fn tcp_address_forms() {
        for ok in ["127.0.0.1:443", "[::1]:53", "db-1.example.com:5432"] {
            let cfg = parse(&format!("{{ tcp = {ok:?} }}")).unwrap();
            assert_eq!(cfg.validate(), Vec::<String>::new(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "::1:53",
            "host:0",
            ":80",
            "host:http",
            "a b:80",
        ] {
            let errs = problems(&format!("{{ tcp = {bad:?} }}"));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert!(
                errs[0].starts_with("health.tcp: expected host:port"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn unknown_and_mistyped_fields_fail_to_parse() {
        let err = parse(r#"{ http = "http://x/", intervall = "5s" }"#).unwrap_err();
        assert!(err.contains("unknown field `intervall`"), "{err}");
        let err = parse(r#"{ http = "http://x/", interval = 5 }"#).unwrap_err();
        assert!(err.contains("duration string"), "{err}");
        let err = parse(r#"{ http = "http://x/", rise = -1 }"#).unwrap_err();
        assert!(err.contains("rise") || err.contains("u32"), "{err}");
    }

    #[test]
    fn integer_jitter_is_accepted() {
        let cfg = parse(r#"{ http = "http://x/", jitter = 0 }"#).unwrap();
        assert_eq!(cfg.jitter, 0.0);
    }

    #[test]
    fn exactly_one_target() {
        let one_of = vec![ONE_OF.to_owned()];
        assert_eq!(problems("{ interval = \"5s\" }"), one_of);
        assert_eq!(
            problems(r#"{ http = "http://x/", tcp = "127.0.0.1:80" }"#),
            one_of
        );
        assert_eq!(parse("{}").unwrap().target(), Err(ONE_OF.to_owned()));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errs = problems(
            "{ http = \"ftp://x/\", expect = [200, 1000], body = \"\", host = \"a b\", \
             interval = \"1s\", timeout = \"1s\", rise = 0, fall = 0, jitter = 0.7 }",
        );
        let expected = [
            "health.http: invalid URL \"ftp://x/\": scheme must be http or https, not \"ftp\"",
            "health.expect: 1000 is not an HTTP status (100-599)",
            "health.body must not be empty",
            "health.host: \"a b\" is not a valid Host header",
            "health.timeout (1s) must be shorter than health.interval (1s)",
            "health.rise must be ≥ 1",
            "health.fall must be ≥ 1",
            "health.jitter must be between 0 and 0.5 (a fraction of the interval), got 0.7",
        ];
        assert_eq!(errs, expected);
    }

    #[test]
    fn more_messages() {
        let errs = problems(r#"{ http = "not a url" }"#);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("health.http: invalid URL \"not a url\": "),
            "{errs:?}"
        );

        let errs = problems(r#"{ tcp = "127.0.0.1:80", expect = [200], body = "ok", host = "h" }"#);
        assert_eq!(
            errs,
            [
                "health.expect applies only to `http` checks",
                "health.body applies only to `http` checks",
                "health.host applies only to `http` checks",
            ]
        );

        let errs =
            problems(r#"{ http = "http://x/", expect = [], interval = "0s", timeout = "0s" }"#);
        assert_eq!(
            errs,
            [
                "health.expect must list at least one status",
                "health.interval must be greater than 0",
                "health.timeout must be greater than 0",
            ]
        );

        let errs = problems(r#"{ http = "http://x/", jitter = nan }"#);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("health.jitter"), "{errs:?}");
    }

    #[test]
    fn serialises_back_to_the_same_table() {
        let cfg = parse(
            r#"{ http = "http://127.0.0.1:8080/healthz", expect = [200], interval = "500ms" }"#,
        )
        .unwrap();
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("interval = \"500ms\""), "{text}");
        assert!(!text.contains("tcp"), "{text}");
        assert_eq!(toml::from_str::<HealthConfig>(&text).unwrap(), cfg);
    }
}
