//! The `boltz l7 --config FILE` TOML: listeners, timeouts, pools (backends,
//! balancing algorithm, health checks, outlier ejection, breaker, retries,
//! admission limits) and routes. Deserialising checks the shape and names
//! the offending key with its `file:line:col`; [`Config::validate`] then
//! reports every semantic problem at once, each naming its path
//! (`pools.web.backends[1].weight`), so an operator fixes a file in one
//! pass. The API's pool and route bodies use the same types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::AdminState;
use super::breaker::BreakerConfig;
use super::limits::{AdmissionConfig, ConcurrencyConfig, RateLimitConfig, RetryConfig};
use super::outlier::OutlierConfig;
use super::pick::{validate_capacity, Algorithm, BoltzmannConfig, DEFAULT_CAPACITY};
use boltz_core::diag::Positions;
use boltz_core::duration::serde_duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The proxy's configuration file (and what API updates start from).
pub struct Config {
    /// Worker threads, each with its own listening sockets and upstream
    /// connections; default one per core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Requests per second at utilisation 1, for `/v1/load`.
    #[serde(default)]
    pub capacity_rps: Option<f64>,
    /// The name sent in `Via` (default `boltz`).
    #[serde(default = "default_via")]
    pub via: String,
    /// Where clients connect.
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    /// Time limits.
    pub timeouts: Timeouts,
    #[serde(default)]
    /// Backend pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    #[serde(default)]
    /// Host and path routes to pools.
    pub routes: Vec<RouteConfig>,
}

fn default_via() -> String {
    "boltz".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// Serve HTTPS (ALPN h2 and http/1.1) with this certificate chain and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing an upstream connection.
    #[serde(default = "d_connect", with = "serde_duration")]
    pub connect: Duration,
    /// A client's whole request head must arrive within this (slowloris).
    #[serde(default = "d_header", with = "serde_duration")]
    pub header: Duration,
    /// An idle client keep-alive connection is closed after this.
    #[serde(default = "d_idle", with = "serde_duration")]
    pub idle: Duration,
    /// From the request's arrival to the end of the response head.
    #[serde(default = "d_request", with = "serde_duration")]
    pub request: Duration,
    /// Graceful shutdown: how long in-flight requests may take to finish.
    #[serde(default = "d_request", with = "serde_duration")]
    pub shutdown: Duration,
}

fn d_connect() -> Duration {
    Duration::from_secs(2)
}
fn d_header() -> Duration {
    Duration::from_secs(10)
}
fn d_idle() -> Duration {
    Duration::from_secs(60)
}
fn d_request() -> Duration {
    Duration::from_secs(30)
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: d_connect(),
            header: d_header(),
            idle: d_idle(),
            request: d_request(),
            shutdown: d_request(),
        }
    }
}

/// The protocol spoken to a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    /// HTTP/1.1 with keep-alive connection pools.
    #[default]
    Http1,
    /// HTTP/2 over cleartext (prior knowledge), multiplexed.
    H2c,
}

/// Where an affinity key comes from for `ring-hash` and `maglev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum HashOn {
    ClientIp,
    Header(String),
    Cookie(String),
}

/// A pool's active health check, run against every backend:
/// `health = { path = "/healthz", expect = [200], interval = "2s" }` or
/// `health = { tcp = true }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolHealth {
    /// HTTP GET of this path (absolute).
    #[serde(default)]
    pub path: Option<String>,
    /// A TCP connect check instead.
    #[serde(default)]
    pub tcp: bool,
    /// Accepted statuses (default 200–399).
    #[serde(default)]
    pub expect: Option<Vec<u16>>,
    /// `Host` header of the check.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "d_hc_interval", with = "serde_duration")]
    pub interval: Duration,
    #[serde(default = "d_hc_timeout", with = "serde_duration")]
    pub timeout: Duration,
    #[serde(default = "d_two")]
    pub rise: u32,
    #[serde(default = "d_two")]
    pub fall: u32,
}

fn d_hc_interval() -> Duration {
    Duration::from_secs(2)
}
fn d_hc_timeout() -> Duration {
    Duration::from_secs(1)
}
fn d_two() -> u32 {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub address: SocketAddr,
    #[serde(default = "d_weight")]
    pub weight: f64,
    #[serde(default)]
    pub state: AdminState,
    /// `lb = "boltzmann"`: requests in flight at which this backend counts
    /// as fully loaded (default: the pool's `boltzmann.capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
}

impl BackendConfig {
    /// The capacity `lb = "boltzmann"` balances with: its own, else the
    /// pool's `boltzmann.capacity`, else the pool's
    /// `admission.max_in_flight`, else [`DEFAULT_CAPACITY`].
    pub fn capacity_in(&self, pool: &PoolConfig) -> f64 {
        self.capacity
            .or(pool.boltzmann.capacity)
            .or(pool.admission.max_in_flight.map(f64::from))
            .unwrap_or(DEFAULT_CAPACITY)
    }
}

fn d_weight() -> f64 {
    1.0
}

/// Largest backend weight.
pub const MAX_WEIGHT: f64 = 10_000.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// One pool: a `[pools.NAME]` table, and the body of `PUT /v1/pools/{name}`.
pub struct PoolConfig {
    /// The balancing algorithm.
    #[serde(default)]
    pub lb: Algorithm,
    /// Temperatures, latency weight and capacity of `lb = "boltzmann"`.
    #[serde(default)]
    pub boltzmann: BoltzmannConfig,
    /// Affinity key for `ring-hash` and `maglev` (default: client IP).
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    /// Bounded-load factor c ≥ 1 for the hashing algorithms (e.g. 1.25): no
    /// backend takes more than c × the mean in-flight load.
    #[serde(default)]
    pub bounded_load: Option<f64>,
    /// HTTP/1.1 or h2c to the backends.
    #[serde(default)]
    pub upstream: Upstream,
    /// A new or recovered backend's weight ramps from 10% over this.
    #[serde(default, with = "serde_duration::option")]
    pub slow_start: Option<Duration>,
    /// Below this fraction of healthy backends, balance over all of them.
    #[serde(default = "d_panic")]
    pub panic_threshold: f64,
    /// Time constant of the PeakEWMA latency.
    #[serde(default = "d_decay", with = "serde_duration")]
    pub ewma_decay: Duration,
    /// The active health check.
    #[serde(default)]
    pub health: Option<PoolHealth>,
    /// Passive outlier ejection.
    #[serde(default)]
    pub outlier: Option<OutlierConfig>,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
    /// Retries and their budget.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Per-backend in-flight limit and queue.
    #[serde(default)]
    pub admission: AdmissionConfig,
    /// Adaptive (gradient) in-flight limit for the whole pool.
    #[serde(default)]
    pub concurrency: Option<ConcurrencyConfig>,
    /// The backends.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
}

fn d_panic() -> f64 {
    0.5
}
pub(crate) fn d_decay() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// One route: requests for a host and path prefix go to a pool.
pub struct RouteConfig {
    /// Host to match (no port; `*.example.com` matches subdomains); any
    /// host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix, on segment boundaries (`/api` matches `/api` and
    /// `/api/x`, not `/apix`).
    #[serde(default = "d_path")]
    pub path: String,
    /// The pool that serves it.
    pub pool: String,
    /// A per-route token bucket (429 beyond it).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

fn d_path() -> String {
    "/".into()
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let pos = Positions::new(path, text);
            let msg = e.message().to_string();
            ConfigError::Invalid(match e.span() {
                Some(span) => pos.at(span, msg).to_string(),
                None => format!("{}: {msg}", path.display()),
            })
        })?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect();
            Err(ConfigError::Invalid(lines.join("\n")))
        }
    }

    /// Every semantic problem, each naming its path.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.listeners.is_empty() {
            e.push("listeners: at least one is needed".into());
        }
        if self.workers == Some(0) {
            e.push("workers: must be at least 1".into());
        }
        if let Some(c) = self.capacity_rps {
            if !(c.is_finite() && c > 0.0) {
                e.push(format!("capacity_rps: must be a positive number, got {c}"));
            }
        }
        for (name, p) in &self.pools {
            e.extend(p.validate(&format!("pools.{name}")));
        }
        e.extend(validate_routes(&self.routes, |p| {
            self.pools.contains_key(p)
        }));
        e
    }

    /// Worker threads to run.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// A body of the API (or a table of a declaration) as `T`, an error naming
/// the path of the first bad field (`backends[1].weight: ...`).
pub fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// What a pool may be named (it is a path segment of the API): letters,
/// digits, `-`, `_` and `.`, up to 64.
pub fn valid_pool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Problems of a route list, given which pool names exist.
pub fn validate_routes(routes: &[RouteConfig], has_pool: impl Fn(&str) -> bool) -> Vec<String> {
    let mut e = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !r.path.starts_with('/') {
            e.push(format!("{at}.path: must start with /, got {:?}", r.path));
        }
        if let Some(h) = &r.host {
            if h.is_empty() || h.contains(['/', ' ', ':']) {
                e.push(format!("{at}.host: a host name without port, got {h:?}"));
            }
        }
        if !has_pool(&r.pool) {
            e.push(format!("{at}.pool: no pool named {:?}", r.pool));
        }
        if let Some(rl) = &r.rate_limit {
            e.extend(rl.validate(&format!("{at}.rate_limit")));
        }
    }
    e
}

impl PoolConfig {
    /// Every semantic problem, each naming its path under `at`.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut e = Vec::new();
        if !(0.0..=1.0).contains(&self.panic_threshold) {
            e.push(format!(
                "{at}.panic_threshold: must be in [0, 1], got {}",
                self.panic_threshold
            ));
        }
        if let Some(c) = self.bounded_load {
            if !(c.is_finite() && c >= 1.0) {
                e.push(format!("{at}.bounded_load: must be at least 1.0, got {c}"));
            }
        }
        e.extend(self.boltzmann.validate(&format!("{at}.boltzmann")));
        if self.ewma_decay.is_zero() {
            e.push(format!("{at}.ewma_decay: must be more than 0"));
        }
        if let Some(h) = &self.health {
            let hat = format!("{at}.health");
            match (&h.path, h.tcp) {
                (Some(p), false) if p.starts_with('/') => {}
                (Some(p), false) => e.push(format!("{hat}.path: must start with /, got {p:?}")),
                (None, true) => {}
                _ => e.push(format!(
                    "{hat}: give exactly one of path (HTTP check) or tcp = true"
                )),
            }
            if h.interval.is_zero() {
                e.push(format!("{hat}.interval: must be more than 0"));
            }
            if h.timeout.is_zero() {
                e.push(format!("{hat}.timeout: must be more than 0"));
            }
            if h.rise == 0 || h.fall == 0 {
                e.push(format!("{hat}: rise and fall must be at least 1"));
            }
        }
        if let Some(o) = &self.outlier {
            e.extend(o.validate(&format!("{at}.outlier")));
        }
        if let Some(b) = &self.breaker {
            e.extend(b.validate(&format!("{at}.breaker")));
        }
        e.extend(self.retry.validate(&format!("{at}.retry")));
        e.extend(self.admission.validate(&format!("{at}.admission")));
        if let Some(c) = &self.concurrency {
            e.extend(c.validate(&format!("{at}.concurrency")));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            let bat = format!("{at}.backends[{i}]");
            if !(b.weight.is_finite() && (0.0..=MAX_WEIGHT).contains(&b.weight)) {
                e.push(format!(
                    "{bat}.weight: must be in [0, {MAX_WEIGHT}], got {}",
                    b.weight
                ));
            }
            if b.address.port() == 0 || b.address.ip().is_unspecified() {
                e.push(format!(
                    "{bat}.address: needs a host and a port, got {}",
                    b.address
                ));
            }
            if let Some(c) = b.capacity {
                e.extend(validate_capacity(c, &format!("{bat}.capacity")));
            }
            if !seen.insert(b.address) {
                e.push(format!("{bat}.address: {} is listed twice", b.address));
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
workers = 2
capacity_rps = 50000
[[listeners]]
address = "127.0.0.1:8080"
[timeouts]
connect = "1s"
[pools.web]
lb = "least-request"
health = { path = "/healthz", interval = "1s" }
outlier = { consecutive_5xx = 3 }
backends = [
  { address = "127.0.0.1:9001" },
  { address = "127.0.0.1:9002", weight = 2, state = "drain" },
]
[pools.steer]
lb = "boltzmann"
boltzmann = { t_min = 0.1, t_max = 1.5, capacity = 50 }
admission = { max_in_flight = 20 }
backends = [{ address = "127.0.0.1:9004", capacity = 80 }, { address = "127.0.0.1:9005" }]
[pools.api]
lb = "ring-hash"
hash_on = { header = "x-user" }
bounded_load = 1.25
backends = [{ address = "127.0.0.1:9003" }]
[[routes]]
host = "api.example.com"
path = "/v1"
pool = "api"
rate_limit = { rps = 100 }
[[routes]]
pool = "web"
"#;

    #[test]
    fn a_good_file() {
        let c = Config::parse(Path::new("l7.toml"), GOOD).unwrap();
        assert_eq!(c.workers(), 2);
        assert_eq!(c.timeouts.connect, Duration::from_secs(1));
        assert_eq!(c.timeouts.header, Duration::from_secs(10));
        let web = &c.pools["web"];
        assert_eq!(web.lb, Algorithm::LeastRequest);
        assert_eq!(web.backends[1].state, AdminState::Drain);
        assert_eq!(web.backends[1].weight, 2.0);
        assert_eq!(
            c.pools["api"].hash_on,
            Some(HashOn::Header("x-user".into()))
        );
        assert_eq!(c.routes[1].path, "/");
        let steer = &c.pools["steer"];
        assert_eq!(steer.lb, Algorithm::Boltzmann);
        assert_eq!(steer.boltzmann.t_max, 1.5);
        assert_eq!(steer.boltzmann.latency_weight, 1.0);
        assert_eq!(steer.backends[0].capacity_in(steer), 80.0);
        assert_eq!(steer.backends[1].capacity_in(steer), 50.0);
        // Without a pool capacity, the admission cap; without that, 100.
        let mut p = steer.clone();
        p.boltzmann.capacity = None;
        assert_eq!(p.backends[1].capacity_in(&p), 20.0);
        assert_eq!(web.backends[0].capacity_in(web), DEFAULT_CAPACITY);
    }

    #[test]
    fn shape_errors_name_file_line_and_column() {
        let bad = GOOD.replace("weight = 2", "wieght = 2");
        let e = Config::parse(Path::new("l7.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("l7.toml:14:"), "{e}");
        assert!(e.contains("wieght"), "{e}");
    }

    #[test]
    fn every_semantic_problem_is_named() {
        let bad = GOOD
            .replace("weight = 2", "weight = -1")
            .replace("pool = \"api\"", "pool = \"apj\"")
            .replace("path = \"/v1\"", "path = \"v1\"")
            .replace("bounded_load = 1.25", "bounded_load = 0.5")
            .replace("t_min = 0.1, t_max = 1.5", "t_min = 3, t_max = 1.5")
            .replace("capacity = 80", "capacity = -1");
        let e = Config::parse(Path::new("l7.toml"), &bad)
            .unwrap_err()
            .to_string();
        for want in [
            "pools.web.backends[1].weight",
            "routes[0].pool: no pool named \"apj\"",
            "routes[0].path",
            "pools.api.bounded_load",
            "pools.steer.boltzmann: t_min (3) must not exceed t_max (1.5)",
            "pools.steer.backends[0].capacity: must be a positive number, got -1",
        ] {
            assert!(e.contains(want), "{want} missing from {e}");
        }
    }
}
