//! Issue 14, end to end in network namespaces: two sites, each with its
//! DNS node (`boltz serve --datacenter`), its L4 balancer (`boltz l4`,
//! generic XDP) and its L7 node (`boltz l4 decap` + `boltz l7` with the VIP
//! on its loopback, answering the client directly, and two origins), all on
//! one bridge with a client. Everything the data plane runs is declared in
//! one zone directory and reaches the daemons only through the DNS nodes;
//! the test reads the daemons' APIs, never writes them.
//!
//! ```text
//!              client 10.99.0.10   (VIP a via l4a, VIP b via l4b)
//!                  |
//!   br0 ---+-------+--------+--------+--------+--------+
//!          |       |        |        |        |        |
//!        dns a    l4 a     l7 a    dns b     l4 b     l7 b
//!      .0.11    .0.12     .0.13    .0.21    .0.22    .0.23
//!                XDP ==IPIP==> decap, VIP 10.99.1.100 on lo (b: 10.99.2.100)
//!                              l7 :80 -> origins :9001 :9002
//! ```
//!
//! Steps: both nodes give the same answers and the VIPs serve through
//! XDP → IP-in-IP → L7 → origin; a site whose origins die leaves the
//! answers; overload raises its price and moves cells exactly as `boltz
//! explain` says, both nodes holding the same prices (to the bit);
//! restarted daemons are pushed their configuration again; a broken zone
//! directory is refused and the old configuration serves.
//! Needs root and an XDP build; elsewhere it says why it skips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::Value;

use crate::netns::{in_ns, missing, spawn_in_ns, Daemon, Lan};
use crate::origin::Origin;

const CLIENT: &str = "10.99.0.10";
const TOKEN: &str = "e2e-s3cret";
const DNS_PORT: u16 = 53;
const API_PORT: u16 = 5380;
const L4_PORT: u16 = 5390;
const L7_PORT: u16 = 5391;
const ORIGIN_PORTS: [u16; 2] = [9001, 9002];

/// One site's addresses.
struct Addrs {
    dc: &'static str,
    dns: &'static str,
    l4: &'static str,
    l7: &'static str,
    vip: &'static str,
    vip_net: &'static str,
    location: (f64, f64),
}

const SITES: [Addrs; 2] = [
    Addrs {
        dc: "a",
        dns: "10.99.0.11",
        l4: "10.99.0.12",
        l7: "10.99.0.13",
        vip: "10.99.1.100",
        vip_net: "10.99.1.0/24",
        location: (50.11, 8.68), // Frankfurt
    },
    Addrs {
        dc: "b",
        dns: "10.99.0.21",
        l4: "10.99.0.22",
        l7: "10.99.0.23",
        vip: "10.99.2.100",
        vip_net: "10.99.2.0/24",
        location: (40.42, -3.70), // Madrid, ~1420 km away
    },
];

/// A client subnet located at a, and one at b.
const NEAR_A: &str = "10.99.200.0/24";
const NEAR_B: &str = "10.99.201.0/24";
/// Cells on the way from a to b, all nearer to a: between 25 % and 49 %
/// of the way, so their distance advantage for a is 0.01–0.36 (in units
/// of `distance_scale_km`), where a small price moves some of them.
const CELLS: usize = 40;

fn cell(i: usize) -> String {
    format!("10.99.{}.0/24", 210 + i)
}

fn cell_location(i: usize) -> (f64, f64) {
    let t = 0.25 + 0.24 * i as f64 / (CELLS - 1) as f64;
    let (a, b) = (SITES[0].location, SITES[1].location);
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

fn geo_csv() -> String {
    let mut s = String::from("network,latitude,longitude,country,continent\n");
    let (a, b) = (SITES[0].location, SITES[1].location);
    s += &format!("{NEAR_A},{},{},DE,EU\n", a.0, a.1);
    s += &format!("{NEAR_B},{},{},ES,EU\n", b.0, b.1);
    for i in 0..CELLS {
        let (lat, lon) = cell_location(i);
        s += &format!("{},{lat:.4},{lon:.4},FR,EU\n", cell(i));
    }
    s
}

const ZONE: &str = r#"origin = "example.com."
ttl = 300
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com.", serial = 1 }
ns = ["ns1.example.com."]

[steering]
load_interval = "1s"
temperature = 0.1
demand_lag = 1
slow_start = "2s"

[records]
www = { type = "steered", datacenters = ["a", "b"], ttl = 5 }
"#;

/// `datacenters.toml`: both sites and their insides; `route_pool` is the
/// pool a's route names (a wrong one makes the file invalid). Each DNS
/// node polls each site's report twice per report interval: polled once
/// per interval, a node misses some of the other site's reports, and the
/// two nodes' smoothed utilisation and prices drift apart (2.8387 against
/// 2.8395 seen).
fn datacenters(route_pool: &str) -> String {
    let mut s = String::new();
    for x in &SITES {
        let pool = if x.dc == "a" { route_pool } else { "web" };
        s += &format!(
            r#"
[datacenters.{dc}]
location = [{lat}, {lon}]
capacity = 100
ipv4 = ["{vip}"]
load = {{ url = "http://{dns}:{API_PORT}/v1/site", interval = "100ms", stale_after = "5s" }}

[datacenters.{dc}.dataplane]
interval = "200ms"

[datacenters.{dc}.l4]
api = "http://{l4}:{L4_PORT}"
token_file = "token"

[[datacenters.{dc}.l4.services]]
vip = "tcp:{vip}:80"
backends = [{{ address = "{l7}" }}]

[datacenters.{dc}.l7]
api = "http://{l7}:{L7_PORT}"
token_file = "token"

[datacenters.{dc}.l7.pools.web]
health = {{ path = "/healthz", interval = "200ms", timeout = "1s", rise = 1, fall = 1 }}
backends = [{{ address = "{l7}:{p0}" }}, {{ address = "{l7}:{p1}" }}]

[[datacenters.{dc}.l7.routes]]
pool = "{pool}"
"#,
            dc = x.dc,
            lat = x.location.0,
            lon = x.location.1,
            vip = x.vip,
            dns = x.dns,
            l4 = x.l4,
            l7 = x.l7,
            p0 = ORIGIN_PORTS[0],
            p1 = ORIGIN_PORTS[1],
        );
    }
    s
}

/// Per site: its namespaces' short names.
fn ns_of(site: usize, role: &str) -> String {
    format!("{role}{}", SITES[site].dc)
}

/// The whole system. Fields drop in order: daemons and origins first,
/// then the namespaces.
struct World {
    nodes: Vec<Daemon>,
    l4: Vec<Daemon>,
    l7: Vec<Daemon>,
    origins: Vec<Vec<Origin>>,
    udp: UdpSocket,
    query_id: AtomicU64,
    /// Each L4 daemon's state file (a restart may take a fresh one).
    l4_state: Vec<PathBuf>,
    lan: Lan,
}

impl World {
    fn dir(&self) -> &Path {
        self.lan.dir.path()
    }

    fn zones(&self) -> PathBuf {
        self.dir().join("zones")
    }

    fn client(&self) -> PathBuf {
        self.lan.ns_path("c")
    }

    fn build() -> World {
        let mut lan = Lan::new("bze");
        lan.host("c", CLIENT);
        for (i, x) in SITES.iter().enumerate() {
            lan.host(&ns_of(i, "d"), x.dns);
            lan.host(&ns_of(i, "l"), x.l4);
            lan.host(&ns_of(i, "w"), x.l7);
            // The client reaches each VIP through its site's L4 node.
            lan.exec(
                &lan.ns("c"),
                &["ip", "route", "add", x.vip_net, "via", x.l4],
            );
            // The L7 node holds the VIP and answers the client directly.
            lan.decap_backend(&ns_of(i, "w"), x.vip);
        }
        let dir = lan.dir.path().to_path_buf();
        let zones = dir.join("zones");
        std::fs::create_dir(&zones).unwrap();
        std::fs::write(zones.join("example.com.toml"), ZONE).unwrap();
        std::fs::write(zones.join("datacenters.toml"), datacenters("web")).unwrap();
        std::fs::write(zones.join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.join("geo.csv"), geo_csv()).unwrap();
        let out = Command::new(crate::BOLTZ)
            .args(["geoip", "build"])
            .arg(dir.join("geo.csv"))
            .arg("-o")
            .arg(dir.join("geo.mmdb"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "geoip build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let udp = in_ns(&lan.ns_path("c"), || UdpSocket::bind((CLIENT, 0)).unwrap());
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut w = World {
            nodes: Vec::new(),
            l4: Vec::new(),
            l7: Vec::new(),
            origins: Vec::new(),
            udp,
            query_id: AtomicU64::new(1),
            l4_state: (0..2)
                .map(|i| dir.join(format!("l4-{}.json", SITES[i].dc)))
                .collect(),
            lan,
        };
        for i in 0..2 {
            let o = w.start_origins(i);
            w.origins.push(o);
            let l7 = w.start_l7(i);
            w.l7.push(l7);
            let l4 = w.start_l4(i);
            w.l4.push(l4);
        }
        for i in 0..2 {
            let n = w.start_node(i);
            w.nodes.push(n);
        }
        w
    }

    fn start_origins(&self, site: usize) -> Vec<Origin> {
        let ip = SITES[site].l7;
        in_ns(&self.lan.ns_path(&ns_of(site, "w")), move || {
            ORIGIN_PORTS
                .iter()
                .map(|p| Origin::start_on(SocketAddr::new(ip.parse().unwrap(), *p)))
                .collect()
        })
    }

    fn start_l7(&self, site: usize) -> Daemon {
        let x = &SITES[site];
        let config = self.dir().join(format!("l7-{}.toml", x.dc));
        std::fs::write(
            &config,
            format!(
                "workers = 1\ncapacity_rps = 100\n[[listeners]]\naddress = \"{}:80\"\n",
                x.vip
            ),
        )
        .unwrap();
        let api = format!("{}:{L7_PORT}", x.l7);
        let token = self.zones().join("token");
        self.lan.start(
            &ns_of(site, "w"),
            &format!("l7 {}", x.dc),
            &[
                "l7",
                "--config",
                config.to_str().unwrap(),
                "--api",
                &api,
                "--api-token-file",
                token.to_str().unwrap(),
            ],
            "ready api=",
        )
    }

    fn start_l4(&self, site: usize) -> Daemon {
        let x = &SITES[site];
        let api = format!("{}:{L4_PORT}", x.l4);
        let token = self.zones().join("token");
        self.lan.l4(
            &ns_of(site, "l"),
            &api,
            &self.l4_state[site],
            &[
                "--api-token-file",
                token.to_str().unwrap(),
                "--flood-limit",
                "0",
            ],
        )
    }

    fn start_node(&self, site: usize) -> Daemon {
        let x = &SITES[site];
        let listen = format!("{}:{DNS_PORT}", x.dns);
        let api = format!("{}:{API_PORT}", x.dns);
        let geo = self.dir().join("geo.mmdb");
        let zones = self.zones();
        self.lan.start(
            &ns_of(site, "d"),
            &format!("dns {}", x.dc),
            &[
                "serve",
                "--zones",
                zones.to_str().unwrap(),
                "--geoip",
                geo.to_str().unwrap(),
                "--listen",
                &listen,
                "--api",
                &api,
                "--datacenter",
                x.dc,
                "--watch-interval",
                "100ms",
            ],
            "ready ",
        )
    }

    /// Every daemon's log, for a failure's message.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .chain(&self.l4)
            .chain(&self.l7)
            .map(|d| format!("--- {} ---\n{}", d.name, tail(&d.log(), 40)))
            .collect()
    }

    fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        crate::wait::wait_for(what, limit, &mut cond, || self.logs())
    }

    /// The A records node `node` answers for a client in `subnet`.
    fn answer(&self, node: usize, subnet: &str) -> Vec<String> {
        let id = (self.query_id.fetch_add(1, Relaxed) & 0xffff) as u16;
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::A,
        ));
        let (a, p) = subnet.split_once('/').unwrap();
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            a.parse().unwrap(),
            p.parse().unwrap(),
            0,
        )));
        m.set_edns(e);
        let server: SocketAddr = (
            SITES[node].dns.parse::<std::net::IpAddr>().unwrap(),
            DNS_PORT,
        )
            .into();
        let mut buf = [0u8; 4096];
        for _ in 0..3 {
            self.udp.send_to(&m.to_vec().unwrap(), server).unwrap();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let Ok((n, _)) = self.udp.recv_from(&mut buf) else {
                    break;
                };
                let r = Message::from_vec(&buf[..n]).unwrap();
                if r.metadata.id != id {
                    continue; // a late answer to an earlier query
                }
                return r
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0.to_string()),
                        _ => None,
                    })
                    .collect();
            }
        }
        panic!("no DNS answer from node {}", SITES[node].dc);
    }

    /// The answer both nodes give for `subnet` (asserted equal).
    fn both_answer(&self, subnet: &str) -> Vec<String> {
        let (a, b) = (self.answer(0, subnet), self.answer(1, subnet));
        assert_eq!(a, b, "the two DNS nodes answer {subnet} differently");
        a
    }

    /// A GET to `ip:port` from the client namespace.
    fn http(&self, ip: &str, port: u16, path: &str) -> Result<(u16, String), String> {
        let addr: SocketAddr = (ip.parse::<std::net::IpAddr>().unwrap(), port).into();
        let s = in_ns(&self.client(), move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        })
        .map_err(|e| format!("connect {addr}: {e}"))?;
        get(s, path)
    }

    /// `GET http://VIP/` through the data plane: status and body.
    fn fetch(&self, vip: &str) -> Result<(u16, String), String> {
        self.http(vip, 80, "/")
    }

    fn api(&self, ip: &str, port: u16, path: &str) -> Value {
        let (code, body) = self
            .http(ip, port, path)
            .unwrap_or_else(|e| panic!("GET {ip}:{port}{path}: {e}\n{}", self.logs()));
        assert_eq!(code, 200, "GET {ip}:{port}{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    fn status(&self, node: usize) -> Value {
        self.api(SITES[node].dns, API_PORT, "/v1/status")
    }

    /// DC `dc` as node `node` sees it.
    fn dc(&self, node: usize, dc: &str) -> Value {
        dc_of(&self.status(node), dc)
    }

    /// Node `node`'s components (l4, l7) from `/v1/status`.
    fn components(&self, node: usize) -> Vec<Value> {
        self.status(node)["site"]["components"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Node `node`'s push counters, per component.
    fn pushes(&self, node: usize) -> Vec<u64> {
        self.components(node)
            .iter()
            .map(|c| c["pushes"].as_u64().unwrap())
            .collect()
    }

    fn in_sync(&self, node: usize) -> bool {
        let c = self.components(node);
        c.len() == 2 && c.iter().all(|c| c["state"] == "in-sync")
    }

    /// The DC whose VIP `answer` is, if it is exactly one.
    fn dc_answered(answer: &[String]) -> Option<&'static str> {
        match answer {
            [one] => SITES.iter().find(|x| x.vip == one).map(|x| x.dc),
            _ => None,
        }
    }

    /// Per cell: the DC node `node` answers.
    fn cell_answers(&self, node: usize) -> Vec<Option<&'static str>> {
        (0..CELLS)
            .map(|i| Self::dc_answered(&self.answer(node, &cell(i))))
            .collect()
    }

    /// Per cell: `boltz explain --api` of node `node`, `drawn[0]`, all
    /// asked at once from the client namespace.
    fn cell_explains(&self, node: usize) -> Vec<String> {
        let api = format!("http://{}:{API_PORT}", SITES[node].dns);
        in_ns(&self.client(), move || {
            let children: Vec<_> = (0..CELLS)
                .map(|i| {
                    Command::new(crate::BOLTZ)
                        .args(["explain", "www.example.com", "--subnet", &cell(i)])
                        .args(["--api", &api, "--json"])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            children
                .into_iter()
                .map(|c| {
                    let out = c.wait_with_output().unwrap();
                    assert!(
                        out.status.success(),
                        "boltz explain: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
                    e["drawn"][0].as_str().unwrap_or("").to_string()
                })
                .collect()
        })
    }

    /// Node `node`'s prices of a and b.
    fn prices(&self, node: usize) -> (f64, f64) {
        let s = self.status(node);
        let p = |dc| dc_of(&s, dc)["price"].as_f64().unwrap();
        (p("a"), p("b"))
    }
}

fn dc_of(status: &Value, dc: &str) -> Value {
    status["zones"][0]["datacenters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dc)
        .cloned()
        .unwrap_or_else(|| panic!("no DC {dc} in {status}"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n") + "\n"
}

/// One HTTP/1.1 GET over `s`, read to its end: status and body.
fn get(mut s: TcpStream, path: &str) -> Result<(u16, String), String> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let code = resp
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {resp:?}"))?;
    let body = resp.split_once("\r\n\r\n").map_or("", |x| x.1);
    Ok((code, body.to_string()))
}

/// A counter of `boltz l4`'s `/metrics` text.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// HTTP load on `vip` from the client namespace: `threads` loops, each
/// pacing itself to `per_thread_rps`, until `stop`, `max` requests in all,
/// or `limit`. Returns (answered 200, other outcomes).
fn drive_load(
    client: &Path,
    vip: &'static str,
    threads: usize,
    per_thread_rps: u64,
    max: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, u64)>> {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    (0..threads)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            spawn_in_ns(client, move || {
                let (mut ok, mut bad) = (0, 0);
                let period = Duration::from_micros(1_000_000 / per_thread_rps);
                let mut next = Instant::now();
                let addr: SocketAddr = (vip.parse::<std::net::IpAddr>().unwrap(), 80).into();
                while !stop.load(Relaxed)
                    && start.elapsed() < limit
                    && sent.fetch_add(1, Relaxed) < max
                {
                    let r = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                        .map_err(|e| e.to_string())
                        .and_then(|s| get(s, "/"));
                    match r {
                        Ok((200, _)) => ok += 1,
                        _ => bad += 1,
                    }
                    next += period;
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
                (ok, bad)
            })
        })
        .collect()
}

#[test]
fn two_sites_end_to_end_in_namespaces() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut w = World::build();
    let limit = Duration::from_secs(30);
    let (a, b) = (&SITES[0], &SITES[1]);

    // 0. Both nodes push their site's configuration and read both reports.
    for (n, x) in SITES.iter().enumerate() {
        w.wait_for(&format!("node {} in sync", x.dc), limit, || w.in_sync(n));
        w.wait_for(
            &format!("node {} seeing both sites up", x.dc),
            limit,
            || {
                let s = w.status(n);
                dc_of(&s, "a")["feed_health"] == "up" && dc_of(&s, "b")["feed_health"] == "up"
            },
        );
    }
    let l4a = w.api(a.l4, L4_PORT, "/v1/services");
    assert_eq!(
        l4a["services"][0]["vip"], "tcp:10.99.1.100:80",
        "the node pushed a's L4 service: {l4a}"
    );

    // 1. A client near a is sent to a by both nodes, near b to b, and
    // both VIPs serve through XDP → IP-in-IP → L7 → origin.
    for (subnet, site) in [(NEAR_A, 0), (NEAR_B, 1)] {
        let want = vec![SITES[site].vip.to_string()];
        w.wait_for(
            &format!("{subnet} answered {}", SITES[site].dc),
            limit,
            || w.answer(0, subnet) == want && w.answer(1, subnet) == want,
        );
        let answer = w.both_answer(subnet);
        let before: u64 = w.origins[site].iter().map(Origin::requests).sum();
        let l4_metrics_before = w
            .http(SITES[site].l4, L4_PORT, "/metrics")
            .map(|r| r.1)
            .unwrap();
        let (code, body) = w
            .fetch(&answer[0])
            .unwrap_or_else(|e| panic!("{e}\n{}", w.logs()));
        assert_eq!(code, 200, "GET http://{}/: {body}", answer[0]);
        assert!(
            ORIGIN_PORTS
                .iter()
                .any(|p| body.starts_with(&p.to_string())),
            "an origin answered: {body:?}"
        );
        let after: u64 = w.origins[site].iter().map(Origin::requests).sum();
        assert_eq!(
            after,
            before + 1,
            "site {}'s origins served it",
            SITES[site].dc
        );
        let l4_metrics = w
            .http(SITES[site].l4, L4_PORT, "/metrics")
            .map(|r| r.1)
            .unwrap();
        let key = format!(
            "boltz_l4_vip_packets_total{{vip=\"tcp:{}:80\"}}",
            SITES[site].vip
        );
        assert!(
            metric(&l4_metrics, &key) > metric(&l4_metrics_before, &key),
            "the request went through {}'s XDP balancer:\n{l4_metrics}",
            SITES[site].dc
        );
    }

    // 2. a's origins die: its pool empties and a leaves both nodes'
    // answers; the a-located client is served by b.
    let t0 = Instant::now();
    for o in w.origins[0].drain(..) {
        o.kill();
    }
    let want_b = vec![b.vip.to_string()];
    w.wait_for("a out of both nodes' answers", limit, || {
        w.answer(0, NEAR_A) == want_b && w.answer(1, NEAR_A) == want_b
    });
    let out_of_answers = t0.elapsed();
    eprintln!("origins of a killed → both nodes answer b: {out_of_answers:?}");
    assert!(
        out_of_answers <= Duration::from_secs(5),
        "a left the answers after {out_of_answers:?}"
    );
    for (n, x) in SITES.iter().enumerate() {
        let dc = w.dc(n, "a");
        assert_eq!(dc["status"], "down", "node {}: {dc}", x.dc);
        assert!(
            dc["feed_reason"]
                .as_str()
                .unwrap_or("")
                .contains("no backend takes traffic"),
            "node {}: {dc}",
            x.dc
        );
    }
    let pools = w.api(a.l7, L7_PORT, "/v1/pools");
    assert!(
        pools["pools"]["web"]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["health"] == "down"),
        "a's pool is empty: {pools}"
    );
    for _ in 0..5 {
        let answer = w.both_answer(NEAR_A);
        let (code, body) = w.fetch(&answer[0]).unwrap();
        assert_eq!(code, 200, "the a-located client through b: {body}");
    }

    // a's origins come back, and so does a (through slow start).
    let t0 = Instant::now();
    let o = w.start_origins(0);
    w.origins[0] = o;
    let want_a = vec![a.vip.to_string()];
    w.wait_for("a back in both nodes' answers", limit, || {
        w.answer(0, NEAR_A) == want_a && w.answer(1, NEAR_A) == want_a
    });
    eprintln!(
        "origins of a back → both nodes answer a: {:?}",
        t0.elapsed()
    );

    // 3. Overload a: its utilisation and price rise, the share of the
    // cells sent to a falls, exactly as `boltz explain` predicts.
    w.wait_for("a's price back to 0 on both nodes", limit, || {
        w.prices(0).0 == 0.0 && w.prices(1).0 == 0.0
    });
    let share = |v: &[Option<&str>]| v.iter().filter(|d| **d == Some("a")).count();
    let before = w.cell_answers(0);
    assert_eq!(
        before,
        w.cell_answers(1),
        "both nodes answer the cells alike"
    );
    let share0 = share(&before);
    eprintln!("cells answered a before the overload: {share0}/{CELLS}");
    assert!(share0 >= CELLS / 2, "most cells near a go to a: {before:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = drive_load(
        &w.client(),
        a.vip,
        6,
        100,
        5000,
        Duration::from_secs(5),
        stop.clone(),
    );
    let (mut max_util, mut max_price, mut moved) = (0.0f64, 0.0f64, None);
    while t0.elapsed() < Duration::from_secs(5) && moved.is_none() {
        let dc = w.dc(0, "a");
        max_util = max_util.max(dc["utilisation"].as_f64().unwrap_or(0.0));
        max_price = max_price.max(dc["price"].as_f64().unwrap_or(0.0));
        if max_price > 0.0 && share(&w.cell_answers(0)) < share0 {
            moved = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Relaxed);
    let (ok, bad) = load
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |s, r| (s.0 + r.0, s.1 + r.1));
    let report = w.api(a.dns, API_PORT, "/v1/site");
    eprintln!(
        "overload of a: {ok} requests answered 200, {bad} not, in {:?}; max utilisation {max_util:.2}, \
         max price {max_price:.3}; report now {report}",
        t0.elapsed()
    );
    let Some(moved) = moved else {
        panic!(
            "a's share did not fall within 5 s of overload (utilisation {max_util}, price {max_price})\n{}",
            w.logs()
        )
    };
    eprintln!("overload of a → share of cells moved off a: {moved:?}");
    assert!(max_util > 0.0 && max_price > 0.0);
    assert!(ok > 0 && ok + bad <= 5000);

    // The answers match `boltz explain` at the same instant: a read is
    // taken as one instant when the prices are the same before and after
    // it and the answers did not change while explain ran.
    for (n, x) in SITES.iter().enumerate() {
        let mut compared = false;
        for attempt in 0..10 {
            let p1 = w.prices(n);
            let answers = w.cell_answers(n);
            let drawn = w.cell_explains(n);
            let again = w.cell_answers(n);
            let p2 = w.prices(n);
            if p1 != p2 || answers != again {
                eprintln!(
                    "node {}: a price step during the comparison (attempt {attempt}), again",
                    x.dc
                );
                continue;
            }
            let explained: Vec<Option<&str>> = drawn
                .iter()
                .map(|d| SITES.iter().find(|x| x.dc == d).map(|x| x.dc))
                .collect();
            assert_eq!(
                answers, explained,
                "node {}: answers vs boltz explain's drawn[0] per cell at prices {p1:?}",
                x.dc
            );
            eprintln!(
                "node {}: {} of {CELLS} cells answered a, as boltz explain says (prices a, b = {p1:?})",
                x.dc,
                share(&answers)
            );
            compared = true;
            break;
        }
        assert!(compared, "no quiet instant to compare answers and explain");
    }

    // Both nodes hold the same prices, to the bit: they apply the same
    // sequence of a's reports (polled twice per report interval, as
    // `boltz check` insists; reports made half an interval off the
    // boundaries steps fall on, repeating their last samples) and step on
    // the same clock boundaries. Read away from the whole seconds where
    // steps fall, node b bracketed by two reads of a.
    let (mut same, mut worst) = (0, 0.0f64);
    let t = Instant::now();
    while same < 5 && t.elapsed() < Duration::from_secs(10) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1000;
        if !(200..700).contains(&ms) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let (p0, p1, p0b) = (w.prices(0), w.prices(1), w.prices(0));
        if p0 == p0b {
            for (x, y) in [(p0.0, p1.0), (p0.1, p1.1)] {
                let off = (x - y).abs() / x.abs().max(y.abs()).max(1e-9);
                worst = worst.max(off);
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "the two nodes' prices of (a, b): {p0:?} vs {p1:?}"
                );
            }
            same += 1;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(same, 5, "no quiet instant to compare the nodes' prices");
    eprintln!("the two nodes' prices differ by at most {worst:e} (relative)");

    // 4. a's daemons restart (l4 with a fresh state file, same pins; l7
    // empty): the node pushes their configuration again, traffic resumes
    // through a, and then no push repeats.
    let pushes_before = w.pushes(0);
    let t0 = Instant::now();
    w.l4[0].kill();
    w.l7[0].kill();
    w.l4_state[0] = w.dir().join("l4-a-fresh.json");
    let l4 = w.start_l4(0);
    w.l4[0] = l4;
    let l7 = w.start_l7(0);
    w.l7[0] = l7;
    w.wait_for("traffic back through a's restarted daemons", limit, || {
        matches!(w.fetch(a.vip), Ok((200, _)))
    });
    let traffic_back = t0.elapsed();
    w.wait_for("node a in sync again", limit, || w.in_sync(0));
    eprintln!(
        "l4 and l7 of a restarted → traffic back through a: {traffic_back:?}, in sync: {:?}",
        t0.elapsed()
    );
    let pushes_after = w.pushes(0);
    assert!(
        pushes_after
            .iter()
            .zip(&pushes_before)
            .all(|(after, before)| after > before),
        "both components were pushed again: {pushes_before:?} → {pushes_after:?}"
    );
    let l4a = w.api(a.l4, L4_PORT, "/v1/services");
    assert_eq!(l4a["services"][0]["vip"], "tcp:10.99.1.100:80", "{l4a}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.pushes(0), pushes_after, "no push loop once in sync");
    assert!(w.in_sync(0));

    // 5. A broken zone directory: both nodes refuse it and the old
    // configuration keeps serving.
    w.wait_for(
        "a back in both nodes' answers after the restart",
        limit,
        || w.answer(0, NEAR_A) == want_a && w.answer(1, NEAR_A) == want_a,
    );
    let good = (w.both_answer(NEAR_A), w.both_answer(NEAR_B));
    std::fs::write(w.zones().join("datacenters.toml"), datacenters("nope")).unwrap();
    w.wait_for("both nodes refusing the reload", limit, || {
        w.nodes
            .iter()
            .all(|n| n.log().contains("zone reload rejected"))
    });
    std::thread::sleep(Duration::from_millis(500));
    for x in &SITES {
        let (code, body) = w.fetch(x.vip).unwrap();
        assert_eq!(
            code, 200,
            "through {} after the refused reload: {body}",
            x.dc
        );
    }
    assert_eq!((w.both_answer(NEAR_A), w.both_answer(NEAR_B)), good);
    let routes = w.api(a.l7, L7_PORT, "/v1/routes");
    assert_eq!(routes["routes"][0]["pool"], "web", "{routes}");
    assert!(w.in_sync(0) && w.in_sync(1));
    std::fs::write(w.zones().join("datacenters.toml"), datacenters("web")).unwrap();
}
