//! The anycast world: a router namespace running BIRD with eBGP sessions to
//! two site namespaces, each running BIRD and `boltz serve --anycast` with
//! the anycast address on its loopback, and a client namespace behind the
//! router asking the anycast address in a loop and recording which site
//! (NSID) answered. Everything is removed when dropped, also on panic.

use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::RecordType;

use crate::api::http_over;
use crate::netns::{in_ns, spawn_in_ns, Daemon, Lan};
use crate::query::edns_query;

pub const ANYCAST: &str = "192.0.2.53";
pub const TOKEN: &str = "anycast-test-token";

/// Why the test cannot run here, if it cannot.
pub fn missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces");
    }
    for (t, arg) in [("ip", "-V"), ("bird", "--version"), ("birdc", "-h")] {
        if Command::new(t).arg(arg).output().is_err() {
            return Some("needs iproute2 and BIRD 2 (apt-get install bird2)");
        }
    }
    None
}

/// A BIRD in a namespace, stopped by its pid file (never by name).
pub struct Bird {
    ns: String,
    conf: PathBuf,
    pub sock: PathBuf,
    pid: PathBuf,
}

impl Bird {
    fn new(lan: &Lan, n: &str, conf: &str) -> Bird {
        let dir = lan.dir.path();
        let b = Bird {
            ns: lan.ns(n),
            conf: dir.join(format!("bird-{n}.conf")),
            sock: dir.join(format!("bird-{n}.ctl")),
            pid: dir.join(format!("bird-{n}.pid")),
        };
        std::fs::write(&b.conf, conf).unwrap();
        b.start();
        b
    }

    /// Starts it (it daemonizes) and waits for its socket to answer.
    pub fn start(&self) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "bird", "-c"])
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.sock)
            .arg("-P")
            .arg(&self.pid)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bird in {}: {}",
            self.ns,
            String::from_utf8_lossy(&out.stderr)
        );
        wait(
            &format!("BIRD in {} answering", self.ns),
            Duration::from_secs(10),
            || self.birdc(&["show", "status"]).is_some(),
        );
    }

    /// `birdc -s SOCK ARGS`'s output, or `None` when it fails.
    pub fn birdc(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid).ok()?.trim().parse().ok()
    }

    /// SIGTERM, and waits for the process to be gone.
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill has no memory preconditions; the pid is this BIRD's.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            // SAFETY: as above; signal 0 only asks whether it exists.
            wait("BIRD to exit", Duration::from_secs(5), || unsafe {
                libc::kill(pid, 0) != 0
            });
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill has no memory preconditions; the pid is this BIRD's.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One site: its BIRD, its boltz, its files.
pub struct Site {
    pub name: &'static str,
    /// The site's own address on its link to the router.
    pub addr: &'static str,
    pub bird: Bird,
    pub boltz: Option<Daemon>,
    pub zones: PathBuf,
    anycast: PathBuf,
    token: PathBuf,
}

/// The world.
pub struct World {
    pub sites: Vec<Site>,
    pub router: Bird,
    // Dropped last: the namespaces go after every daemon in them.
    pub lan: Lan,
}

pub const ZONE: &str = r#"origin = "example.com."
ttl = 300
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com.", serial = 1 }
ns = ["ns1.example.com."]

[records]
ns1 = { type = "A", values = ["192.0.2.53"] }
www = { type = "A", values = ["192.0.2.80"] }
probe = { type = "A", values = ["192.0.2.99"] }
"#;

const ROUTER: &str = r#"router id 198.51.100.1;
protocol device { }
protocol kernel { ipv4 { export all; }; merge paths on; }
filter from_sites {
  if net != 192.0.2.53/32 then reject;
  # RFC 8326: a site on its way out is the last resort.
  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
  accept;
}
protocol bgp site_a {
  local 198.51.100.1 as 65000; neighbor 198.51.100.2 as 65001;
  connect delay time 1; error wait time 1, 10;
  ipv4 { import filter from_sites; export none; };
}
protocol bgp site_b {
  local 198.51.100.5 as 65000; neighbor 198.51.100.6 as 65002;
  connect delay time 1; error wait time 1, 10;
  ipv4 { import filter from_sites; export none; };
}
"#;

fn site_bird(addr: &str, asn: u32, router: &str) -> String {
    format!(
        r#"router id {addr};
protocol device {{ }}
protocol static boltz_ns {{ ipv4; route 192.0.2.53/32 via "lo"; disabled yes; }}
protocol static boltz_ns_drain {{ ipv4 {{ preference 100; }}; route 192.0.2.53/32 via "lo"; disabled yes; }}
filter to_router {{
  if proto = "boltz_ns" then accept;
  if proto = "boltz_ns_drain" then {{ bgp_community.add((65535, 0)); accept; }}
  reject;
}}
protocol bgp upstream {{
  local {addr} as {asn}; neighbor {router} as 65000;
  connect delay time 1; error wait time 1, 10;
  ipv4 {{ import none; export filter to_router; }};
}}
"#
    )
}

/// An anycast file for the test's zone and prefix; `speaker` holds the
/// lines that name the speaker.
pub fn anycast_file(speaker: &str) -> String {
    format!(
        r#"{speaker}
rise = 2
fall = 2
hold_down = "3s"
drain_window = "2s"
stop_wait = "1s"

[probe]
name = "probe.example.com."
expect = ["192.0.2.99"]

[[prefix]]
prefix = "192.0.2.53/32"
protocol = "boltz_ns"
drain_protocol = "boltz_ns_drain"
"#
    )
}

impl World {
    /// Builds the namespaces (named after `tag`, one per test), links and
    /// BIRDs; boltz is started per site by [`World::start_boltz`].
    pub fn new(tag: &str) -> World {
        let mut lan = Lan::new(tag);
        for n in ["r", "a", "b", "c"] {
            lan.bare(n);
        }
        lan.wire(
            ("r", "ra", "198.51.100.1/30"),
            ("a", "eth0", "198.51.100.2/30"),
        );
        lan.wire(
            ("r", "rb", "198.51.100.5/30"),
            ("b", "eth0", "198.51.100.6/30"),
        );
        lan.wire(
            ("r", "rc", "198.51.100.9/30"),
            ("c", "eth0", "198.51.100.10/30"),
        );
        let r = lan.ns("r");
        lan.exec(
            &r,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                // Flows, not hosts, spread over the sites.
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv4.conf.all.rp_filter=0",
            ],
        );
        for (n, gw) in [
            ("a", "198.51.100.1"),
            ("b", "198.51.100.5"),
            ("c", "198.51.100.9"),
        ] {
            lan.exec(&lan.ns(n), &["ip", "route", "add", "default", "via", gw]);
        }
        for n in ["a", "b"] {
            lan.exec(
                &lan.ns(n),
                &["ip", "addr", "add", &format!("{ANYCAST}/32"), "dev", "lo"],
            );
        }
        let router = Bird::new(&lan, "r", ROUTER);
        let mut sites = Vec::new();
        for (name, n, addr, asn, gw) in [
            ("site-a", "a", "198.51.100.2", 65001, "198.51.100.1"),
            ("site-b", "b", "198.51.100.6", 65002, "198.51.100.5"),
        ] {
            let bird = Bird::new(&lan, n, &site_bird(addr, asn, gw));
            let dir = lan.dir.path().join(n);
            let zones = dir.join("zones");
            std::fs::create_dir_all(&zones).unwrap();
            std::fs::write(zones.join("example.com.toml"), ZONE).unwrap();
            let anycast = dir.join("anycast.toml");
            let speaker = format!(
                "speaker = \"bird\"\nbird_socket = \"{}\"",
                bird.sock.display()
            );
            std::fs::write(&anycast, anycast_file(&speaker)).unwrap();
            let token = dir.join("token");
            std::fs::write(&token, TOKEN).unwrap();
            sites.push(Site {
                name,
                addr,
                bird,
                boltz: None,
                zones,
                anycast,
                token,
            });
        }
        World { sites, router, lan }
    }

    pub fn key(i: usize) -> &'static str {
        ["a", "b"][i]
    }

    /// Starts site `i`'s `boltz serve`: site A on the anycast address,
    /// site B on the wildcard (its answers must still come from the
    /// anycast address, or the client drops them).
    pub fn start_boltz(&mut self, i: usize) {
        let s = &self.sites[i];
        let listen = if i == 0 {
            format!("{ANYCAST}:53")
        } else {
            "0.0.0.0:53".to_string()
        };
        let args = [
            "serve",
            "--zones",
            s.zones.to_str().unwrap(),
            "--no-geoip",
            "--listen",
            &listen,
            "--api",
            "127.0.0.1:5380",
            "--api-token-file",
            s.token.to_str().unwrap(),
            "--nsid",
            s.name,
            "--anycast",
            s.anycast.to_str().unwrap(),
            "--watch-interval",
            "200ms",
            "--threads",
            "1",
        ];
        let d = self.lan.start(
            Self::key(i),
            &format!("boltz on {}", s.name),
            &args,
            "ready",
        );
        self.sites[i].boltz = Some(d);
    }

    /// Replaces site `i`'s anycast file (before its boltz starts).
    pub fn set_anycast(&self, i: usize, text: &str) {
        std::fs::write(&self.sites[i].anycast, text).unwrap();
    }

    /// Site `i`'s boltz log.
    pub fn log(&self, i: usize) -> String {
        self.sites[i]
            .boltz
            .as_ref()
            .map(|d| d.log())
            .unwrap_or_default()
    }

    /// An API request to site `i`'s boltz, from inside its namespace.
    pub fn api(&self, i: usize, method: &str, path: &str) -> (u16, String) {
        let (method, path) = (method.to_string(), path.to_string());
        in_ns(&self.lan.ns_path(Self::key(i)), move || {
            let s = TcpStream::connect("127.0.0.1:5380").unwrap();
            http_over(s, "127.0.0.1", &method, &path, None, Some(TOKEN))
        })
    }

    /// Site `i`'s first prefix as `/v1/anycast` shows it.
    pub fn prefix_state(&self, i: usize) -> serde_json::Value {
        let (code, body) = self.api(i, "GET", "/v1/anycast");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["prefixes"][0].clone()
    }

    /// The next hops the router's kernel uses for the anycast address.
    pub fn fib(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.lan.ns("r"), "-j", "route", "show", ANYCAST])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut hops = Vec::new();
        for r in v.as_array().into_iter().flatten() {
            if let Some(g) = r["gateway"].as_str() {
                hops.push(g.to_string());
            }
            for h in r["nexthops"].as_array().into_iter().flatten() {
                if let Some(g) = h["gateway"].as_str() {
                    hops.push(g.to_string());
                }
            }
        }
        hops.sort();
        hops
    }

    /// The paths the router's BIRD holds for the anycast prefix: the
    /// neighbour and whether it carries GRACEFUL_SHUTDOWN.
    pub fn paths(&self) -> Vec<(String, bool)> {
        let Some(out) = self
            .router
            .birdc(&["show", "route", "for", "192.0.2.53/32", "all"])
        else {
            return Vec::new();
        };
        let mut paths: Vec<(String, bool)> = Vec::new();
        for line in out.lines() {
            let t = line.trim();
            if let Some(via) = t.strip_prefix("via ") {
                let gw = via.split_whitespace().next().unwrap_or("").to_string();
                paths.push((gw, false));
            } else if t.starts_with("BGP.community:") && t.contains("(65535,0)") {
                if let Some(last) = paths.last_mut() {
                    last.1 = true;
                }
            }
        }
        paths.sort();
        paths
    }
}

/// Polls `cond` every 2 ms until it holds; returns how long it took,
/// panics after `limit`.
pub fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// One query's fate: when it was settled (answered or given up on) and
/// which site answered (`None`: no answer within the timeout).
pub type Outcome = (Instant, Option<String>);

/// The client behind the router: asks `www.example.com` on the anycast
/// address from a fresh port each time (so flows spread over both paths),
/// one at a time, asking for NSID.
pub struct Client {
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<Outcome>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    pub fn start(world: &World) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = spawn_in_ns(&world.lan.ns_path("c"), move || {
            let query = nsid_query();
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(400)))
                    .unwrap();
                let site = sock
                    .send_to(&query, (ANYCAST, 53))
                    .ok()
                    .and_then(|_| sock.recv(&mut buf).ok())
                    .and_then(|n| nsid_of(&buf[..n]));
                l.lock().unwrap().push((Instant::now(), site));
                std::thread::sleep(Duration::from_millis(4));
            }
        });
        Client {
            stop,
            log,
            handle: Some(handle),
        }
    }

    /// Queries settled since `t`: (answered by each site, lost).
    pub fn since(&self, t: Instant) -> (usize, usize, usize) {
        let log = self.log.lock().unwrap();
        let mut n = (0, 0, 0);
        for (_, site) in log.iter().filter(|(at, _)| *at >= t) {
            match site.as_deref() {
                Some("site-a") => n.0 += 1,
                Some(_) => n.1 += 1,
                None => n.2 += 1,
            }
        }
        n
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn nsid_query() -> Vec<u8> {
    edns_query(
        0x2626,
        "www.example.com.",
        RecordType::A,
        vec![EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap())],
    )
}

fn nsid_of(raw: &[u8]) -> Option<String> {
    let m = Message::from_vec(raw).ok()?;
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(String::from_utf8_lossy(p.as_ref()).into_owned()),
        _ => None,
    }
}
