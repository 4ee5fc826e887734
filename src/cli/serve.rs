//! `boltz serve`: wires zones, geo database, control plane, DNS transports
//! and the API together, and owns reloading: SIGHUP or a change of a watched
//! file reloads zones and the geo database; a broken file is logged and the
//! old data keeps serving. With `--datacenter NAME` the node is also its
//! site's control plane (`site`): it drives the DC's `boltz l4` and `boltz
//! l7` and steers on what they report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use boltz_core::duration::parse_duration;
use boltz_gslb::{
    datacenters_file, read_secrets, zone_files, ApiState, Control, Cookies, GeoDb, Handler,
    Metrics, Rrl, RrlConfig, Secrets, TcpLimits, TcpShared,
};

use super::{anycast, node, site};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Zone file or directory of *.toml zone files (with the shared
    /// datacenters.toml there or beside the file, if any).
    #[arg(long, default_value = "zones")]
    zones: PathBuf,
    /// MaxMind DB (GeoIP2-City shape) for client locations.
    #[arg(long, default_value = "geoip/demo.mmdb")]
    geoip: PathBuf,
    /// Run without a geo database (every client in one cell, weight-only).
    #[arg(long, conflicts_with = "geoip")]
    no_geoip: bool,
    /// DNS address (UDP and TCP); repeat for more (an anycast IPv4 and
    /// IPv6 address, say).
    #[arg(long, default_value = "127.0.0.1:5353")]
    listen: Vec<SocketAddr>,
    /// Local API address.
    #[arg(long, default_value = "127.0.0.1:5380")]
    api: SocketAddr,
    /// File holding the API bearer token (else $BOLTZ_API_TOKEN); without
    /// one, the API is read-only.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// UDP worker threads, each with its own SO_REUSEPORT socket (default:
    /// one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The datacenter this node runs in: push its inside (datacenters.toml)
    /// to its `boltz l4` and `boltz l7`, and report its load, effective
    /// capacity and health from them (`/v1/site`).
    #[arg(long)]
    datacenter: Option<String>,
    /// This server's identifier, returned to queries that ask for it with
    /// the NSID option (RFC 5001, `dig +nsid`): which anycast instance
    /// answered.
    #[arg(long)]
    nsid: Option<String>,
    /// Announce the name servers' anycast prefixes through BIRD (or
    /// ExaBGP) while this server answers correctly on them: the anycast
    /// file (speaker, prefixes, protocols, self-probe, rules).
    #[arg(long)]
    anycast: Option<PathBuf>,
    /// TCP: time a connection has, from one answered query, to send the
    /// next whole query and read its answers (cut to a tenth when the
    /// connections pass three quarters of --tcp-max-connections).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    tcp_idle: Duration,
    /// TCP: concurrent connections.
    #[arg(long, default_value_t = 1024)]
    tcp_max_connections: usize,
    /// TCP: concurrent connections from one client address.
    #[arg(long, default_value_t = 32)]
    tcp_max_per_address: usize,
    /// DNS cookies (RFC 7873): the server secret file, one secret per line
    /// in hex (32 digits), the current first and the previous second;
    /// anycast sites that share it accept each other's cookies (RFC 9018).
    /// Reread when it changes or on SIGHUP. Without it the secret is
    /// random and rotated every 26 hours.
    #[arg(long, conflicts_with = "no_cookies")]
    cookie_secret_file: Option<PathBuf>,
    /// Ignore the COOKIE option (answer no cookie).
    #[arg(long)]
    no_cookies: bool,
    /// Response rate limiting (UDP): answers per second per client prefix
    /// and question; 0 (the default) turns RRL off.
    #[arg(long, default_value_t = 0)]
    rrl_rate: u32,
    /// RRL: NXDOMAIN responses per second per prefix (default: --rrl-rate).
    #[arg(long)]
    rrl_nxdomain_rate: Option<u32>,
    /// RRL: error responses (REFUSED, FORMERR, ...) per second per prefix
    /// (default: --rrl-rate).
    #[arg(long)]
    rrl_error_rate: Option<u32>,
    /// RRL: referrals per second per prefix (default: --rrl-rate).
    #[arg(long)]
    rrl_referral_rate: Option<u32>,
    /// RRL: a burst of this many seconds' worth of responses is allowed.
    #[arg(long, default_value_t = 2)]
    rrl_burst: u32,
    /// RRL: every Nth limited response is sent truncated (TC) so a real
    /// client retries over TCP; 0 drops them all.
    #[arg(long, default_value_t = 2)]
    rrl_slip: u32,
    /// RRL: the IPv4 prefix a client is counted by.
    #[arg(long, default_value_t = 24)]
    rrl_ipv4_prefix: u8,
    /// RRL: the IPv6 prefix a client is counted by.
    #[arg(long, default_value_t = 56)]
    rrl_ipv6_prefix: u8,
    /// RRL: a network never limited (repeat for more).
    #[arg(long)]
    rrl_exempt: Vec<ipnet::IpNet>,
    /// RRL: count and log what would be limited, limit nothing.
    #[arg(long)]
    rrl_log_only: bool,
    /// How often to look for changed zone and geo files.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    watch_interval: Duration,
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
    let loaded = match node::load(&a.zones, a.datacenter.as_deref()) {
        Ok(l) => l,
        Err(diags) => {
            for d in &diags.0 {
                eprintln!("{d}");
            }
            eprintln!(
                "boltz: refusing to start: {} error(s) in zones",
                diags.0.len()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let geo = if a.no_geoip {
        None
    } else {
        Some(Arc::new(GeoDb::open(&a.geoip).with_context(|| {
            format!("opening geo database {}", a.geoip.display())
        })?))
    };
    let token = super::read_token(a.api_token_file.as_deref())?;
    let cookies = if a.no_cookies {
        None
    } else {
        Some(Arc::new(match &a.cookie_secret_file {
            Some(f) => Cookies::new(read_secret_file(f)?),
            None => Cookies::random(),
        }))
    };
    let anycast = match a.anycast.as_deref().map(anycast::load).transpose() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };

    raise_open_files();
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(serve(
        a,
        loaded,
        geo,
        token.map(Arc::from),
        threads,
        anycast,
        cookies,
    ))
}

/// The cookie secrets in `path`.
fn read_secret_file(path: &Path) -> anyhow::Result<Secrets> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the cookie secret file {}", path.display()))?;
    read_secrets(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn serve(
    a: ServeArgs,
    loaded: node::Loaded,
    geo: Option<Arc<GeoDb>>,
    token: Option<Arc<str>>,
    threads: usize,
    anycast: Option<boltz_anycast::Config>,
    cookies: Option<Arc<Cookies>>,
) -> anyhow::Result<ExitCode> {
    let control = Control::new(loaded.zones, true)?;
    let site = loaded
        .site
        .map(|s| site::Node::start(s, control.clone(), geo.clone()));
    let metrics = Arc::new(Metrics::default());
    let tcp_limits = TcpLimits {
        idle: a.tcp_idle,
        max_connections: a.tcp_max_connections.max(1),
        per_address: a.tcp_max_per_address.max(1),
    };
    let mut handler = Handler::new(control.clone(), geo.clone(), metrics.clone());
    handler.nsid = a.nsid.as_ref().map(|id| Arc::from(id.as_bytes()));
    handler.tcp_keepalive = Some(tcp_limits.idle);
    handler.cookies = cookies.clone();
    handler.rrl = rrl_config(&a).map(|c| Arc::new(Rrl::new(c)));
    if let (Some(c), None) = (&cookies, &a.cookie_secret_file) {
        tokio::spawn(rotate_cookie_secret(c.clone()));
    }
    let handler = Arc::new(handler);

    let mut bound = Vec::new();
    for addr in &a.listen {
        let (udp, tcp) =
            boltz_gslb::bind(*addr, threads).with_context(|| format!("binding DNS on {addr}"))?;
        bound.push((udp, tcp));
    }
    let api_listener = tokio::net::TcpListener::bind(a.api)
        .await
        .with_context(|| format!("binding API on {}", a.api))?;
    let mut dns_addrs = Vec::new();
    for (udp, _) in &bound {
        dns_addrs.push(udp[0].local_addr()?);
    }
    let api_addr = api_listener.local_addr()?;

    tokio::spawn(control.clone().run_ticker());
    // One set of TCP limits for every listening address.
    let tcp_shared = TcpShared::new(tcp_limits);
    for (udp, tcp) in bound {
        boltz_gslb::spawn_udp_workers(udp, handler.clone()).context("starting UDP workers")?;
        tokio::spawn(boltz_gslb::serve_tcp(
            tcp,
            handler.clone(),
            tcp_shared.clone(),
        ));
    }
    // Announcing starts once the server answers (its first probe asks it).
    let stop_wait = anycast.as_ref().map(|c| c.stop_wait);
    let (announcing, anycast_view) = match anycast {
        Some(cfg) => {
            let (r, v) = anycast::start(cfg, dns_addrs.clone(), site.clone()).await?;
            (Some(r), Some(v))
        }
        None => (None, None),
    };
    let app = boltz_gslb::router(ApiState {
        control: control.clone(),
        geo: geo.clone(),
        metrics: metrics.clone(),
        token: token.clone(),
        // `--datacenter` and its report belong to the site crate.
        site: site.as_ref().map(|n| n.feed.clone()),
        anycast: anycast_view,
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(api_listener, app).await {
            error!(error = %e, "API server stopped");
        }
    });
    let reloader = Reloader {
        cookie_file: a.cookie_secret_file.clone().zip(cookies.clone()),
        cookie_seen: a.cookie_secret_file.as_deref().map(file_identity),
        zones_path: a.zones.clone(),
        datacenter: a.datacenter.clone(),
        site: site.clone(),
        control: control.clone(),
        geo: geo.clone(),
        metrics: metrics.clone(),
        last: fingerprint(&a.zones),
    };
    tokio::spawn(reloader.run(a.watch_interval));

    let dns_list = dns_addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    info!(dns = %dns_list, api = %api_addr, zones = %a.zones.display(), token = token.is_some(), "boltz serving");
    // One machine-readable line on stdout for scripts and tests.
    // A reader that went away does not stop the server.
    let _ = super::out::write(format_args!("ready dns={dns_list} api={api_addr}\n"));

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    if let (Some(r), Some(wait)) = (announcing, stop_wait) {
        // Withdraw first, keep answering while the routers move away: a
        // client that keeps asking the anycast address loses nothing.
        info!("withdrawing the anycast prefixes");
        r.stop().await;
        info!(wait = ?wait, "withdrawn; still answering while the routers converge");
        tokio::time::sleep(wait).await;
    }
    info!("shutting down");
    Ok(ExitCode::SUCCESS)
}

/// The rate limiter's settings, `None` when it is off.
fn rrl_config(a: &ServeArgs) -> Option<RrlConfig> {
    let all = [
        a.rrl_rate,
        a.rrl_nxdomain_rate.unwrap_or(a.rrl_rate),
        a.rrl_error_rate.unwrap_or(a.rrl_rate),
        a.rrl_referral_rate.unwrap_or(a.rrl_rate),
    ];
    (all.iter().any(|r| *r > 0)).then(|| RrlConfig {
        rates: all,
        burst_seconds: a.rrl_burst.max(1),
        slip: a.rrl_slip,
        ipv4_prefix: a.rrl_ipv4_prefix.min(32),
        ipv6_prefix: a.rrl_ipv6_prefix.min(128),
        exempt: a.rrl_exempt.clone(),
        log_only: a.rrl_log_only,
    })
}

/// A random cookie secret is replaced every 26 hours (RFC 7873 §7.1 asks
/// for between a day and a month), the old one still accepted.
async fn rotate_cookie_secret(cookies: Arc<Cookies>) {
    let every = Duration::from_secs(26 * 3600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let old = cookies.secrets().current;
        cookies.set(Secrets {
            current: boltz_gslb::random_secret(),
            previous: Some(old),
        });
        info!("cookie secret rotated");
    }
}

/// Raises the soft limit on open files to the hard one: every TCP
/// connection is a descriptor, and 1024 (a common soft default) is what
/// --tcp-max-connections alone would take.
fn raise_open_files() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// A file's size and modification time (what says it changed).
fn file_identity(path: &Path) -> (u64, Option<SystemTime>) {
    let m = std::fs::metadata(path).ok();
    (
        m.as_ref().map_or(0, |m| m.len()),
        m.and_then(|m| m.modified().ok()),
    )
}

/// Identity of the zone files and the shared `datacenters.toml`: names,
/// sizes and modification times.
fn fingerprint(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    zone_files(path)
        .unwrap_or_default()
        .into_iter()
        .chain(datacenters_file(path))
        .map(|f| {
            let m = std::fs::metadata(&f).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let mtime = m.and_then(|m| m.modified().ok());
            (f, len, mtime)
        })
        .collect()
}

struct Reloader {
    /// The cookie secret file and what it feeds.
    cookie_file: Option<(PathBuf, Arc<Cookies>)>,
    cookie_seen: Option<(u64, Option<SystemTime>)>,
    zones_path: PathBuf,
    datacenter: Option<String>,
    site: Option<Arc<site::Node>>,
    control: Arc<Control>,
    geo: Option<Arc<GeoDb>>,
    metrics: Arc<Metrics>,
    last: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Reloader {
    async fn run(mut self, every: Duration) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                error!(error = %e, "cannot listen for SIGHUP; file watch only");
                None
            }
        };
        // The zones were just loaded: the first look is one interval away.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            if forced {
                info!("SIGHUP: reloading zones and geo database");
            }
            self.check_zones(forced).await;
            self.check_geo(forced);
            self.check_cookie_secret(forced);
        }
    }

    async fn check_zones(&mut self, forced: bool) {
        let now = fingerprint(&self.zones_path);
        if !forced && now == self.last {
            return;
        }
        self.last = now;
        let path = self.zones_path.clone();
        let dc = self.datacenter.clone();
        // Parsing is CPU work that may take a while for big zones: keep it
        // off the async workers that answer queries.
        let loaded = tokio::task::spawn_blocking(move || node::load(&path, dc.as_deref())).await;
        match loaded {
            Ok(Ok(loaded)) => {
                let n = loaded.zones.zones.len();
                self.control.apply_zones(Arc::new(loaded.zones));
                if let (Some(node), Some(s)) = (&self.site, loaded.site) {
                    node.declare(s);
                }
                self.metrics.count_reload(true);
                info!(zones = n, "zones reloaded");
            }
            Ok(Err(diags)) => {
                self.metrics.count_reload(false);
                for d in &diags.0 {
                    error!(diagnostic = %d, "zone reload rejected; the old zones and data plane configuration stay");
                }
            }
            Err(e) => error!(error = %e, "zone reload task failed"),
        }
    }

    fn check_cookie_secret(&mut self, forced: bool) {
        let Some((path, cookies)) = &self.cookie_file else {
            return;
        };
        let now = file_identity(path);
        if !forced && Some(now) == self.cookie_seen {
            return;
        }
        self.cookie_seen = Some(now);
        match read_secret_file(path) {
            Ok(s) if s == cookies.secrets() => {}
            Ok(s) => {
                cookies.set(s);
                info!(file = %path.display(), "cookie secret reloaded");
            }
            Err(e) => error!(error = %e, "cookie secret file rejected; the old secret stays"),
        }
    }

    fn check_geo(&self, forced: bool) {
        let Some(geo) = &self.geo else { return };
        let r = if forced {
            geo.reload().map(|_| true)
        } else {
            geo.reload_if_changed()
        };
        match r {
            Ok(true) => info!(db = %geo.metadata_summary(), "geo database reloaded"),
            Ok(false) => {}
            Err(e) => error!(error = %e, "geo database reload failed; old database keeps serving"),
        }
    }
}
