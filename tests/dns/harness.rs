//! Harness for the DNS tests: builds a geo database with the
//! real `boltz geoip build`, writes zone files, starts the real `boltz serve`
//! on loopback ports, and talks to it over real sockets (a hickory-proto
//! message over UDP/TCP, and plain HTTP/1.1 for the API).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::api::http_over;
pub use crate::wait::wait_for;
pub(crate) use crate::BOLTZ;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub const TOKEN: &str = "test-token-123";

/// A geo CSV covering three continents, plus loopback networks so tests can
/// be "a resolver in Europe" by binding to 127.0.1.x.
pub const GEO_CSV: &str = "\
network,latitude,longitude,country,continent
81.2.69.0/24,51.5142,-0.0931,GB,EU
89.160.20.0/24,58.4167,15.6167,SE,EU
216.160.83.0/24,47.2513,-122.3149,US,NA
67.43.156.0/24,38.9,-77.04,US,NA
1.128.0.0/11,35.6762,139.6503,JP,AS
14.0.0.0/12,1.3521,103.8198,SG,AS
2a02:ec0::/32,59.3293,18.0686,SE,EU
2600:1700::/28,41.8781,-87.6298,US,NA
2400:cb00::/32,22.3193,114.1694,HK,AS
127.0.1.0/24,50.0,8.0,DE,EU
127.0.2.0/24,40.0,-75.0,US,NA
127.0.3.0/24,1.3,103.8,SG,AS
";

/// DCs: fra (Europe), iad (US east), sin (Asia).
pub fn zone_toml(extra_steering: &str, dc_extra: &[(&str, &str)], records: &str) -> String {
    let extra = |dc: &str| {
        dc_extra
            .iter()
            .filter(|(d, _)| *d == dc)
            .map(|(_, e)| format!("{e}\n"))
            .collect::<String>()
    };
    format!(
        r#"origin = "example.com."
ttl = 300
soa = {{ mname = "ns1.example.com.", rname = "hostmaster.example.com.", serial = 1, minimum = 60 }}
ns = ["ns1.example.com."]

[steering]
temperature = "auto"
{extra_steering}

[datacenters.fra]
location = [50.11, 8.68]
capacity = 1000
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8:f::10"]
{fra}
[datacenters.iad]
location = [38.95, -77.45]
capacity = 1000
ipv4 = ["198.51.100.10"]
ipv6 = ["2001:db8:a::10"]
{iad}
[datacenters.sin]
location = [1.35, 103.82]
capacity = 1000
ipv4 = ["203.0.113.10"]
ipv6 = ["2001:db8:c::10"]
{sin}
[records]
www = {{ type = "steered", datacenters = ["fra", "iad", "sin"], ttl = 30 }}
ns1 = {{ type = "A", values = ["192.0.2.53"] }}
{records}
"#,
        fra = extra("fra"),
        iad = extra("iad"),
        sin = extra("sin"),
    )
}

pub const FRA: &str = "192.0.2.10";
pub const IAD: &str = "198.51.100.10";
pub const SIN: &str = "203.0.113.10";

/// A temporary directory with zones/ and a geo database.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// `boltz serve` on these zones and this database, DNS and API on
    /// free loopback ports.
    pub fn serve_command(&self) -> Command {
        self.serve_command_on("127.0.0.1:0")
    }

    /// `serve_command` with the API on `api`.
    pub fn serve_command_on(&self, api: &str) -> Command {
        let mut cmd = Command::new(BOLTZ);
        cmd.arg("serve")
            .arg("--zones")
            .arg(self.zones())
            .arg("--geoip")
            .arg(self.geo())
            .args(["--listen", "127.0.0.1:0", "--api", api]);
        cmd
    }

    pub fn new(zone: &str) -> Fixture {
        Self::with_geo(zone, GEO_CSV)
    }

    pub fn with_geo(zone: &str, csv: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(dir.path().join("zones/example.com.toml"), zone).unwrap();
        std::fs::write(dir.path().join("geo.csv"), csv).unwrap();
        let (csv, mmdb) = (dir.path().join("geo.csv"), dir.path().join("geo.mmdb"));
        boltz_ok(
            [
                OsStr::new("geoip"),
                OsStr::new("build"),
                csv.as_os_str(),
                OsStr::new("-o"),
                mmdb.as_os_str(),
            ],
            None,
        );
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        Fixture { dir }
    }

    pub fn zones(&self) -> PathBuf {
        self.dir.path().join("zones")
    }

    pub fn zone_file(&self) -> PathBuf {
        self.zones().join("example.com.toml")
    }

    pub fn geo(&self) -> PathBuf {
        self.dir.path().join("geo.mmdb")
    }

    pub fn serve(&self) -> Server {
        Server::start(self, &[])
    }
}

/// A running `boltz serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    /// The first DNS address (`--listen` may give more).
    pub dns: SocketAddr,
    /// Every DNS address, in `--listen` order.
    pub dns_all: Vec<SocketAddr>,
    pub api: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// `extra` may give `--api ADDR` (else any free port).
    pub fn start(fx: &Fixture, extra: &[&str]) -> Server {
        let at = extra.iter().position(|a| *a == "--api");
        let api = at.map_or("127.0.0.1:0", |i| extra[i + 1]);
        let extra: Vec<&str> = extra
            .iter()
            .enumerate()
            .filter(|(i, _)| at.is_none_or(|a| *i != a && *i != a + 1))
            .map(|(_, a)| *a)
            .collect();
        let mut child = fx
            .serve_command_on(api)
            .args(if extra.contains(&"--watch-interval") {
                &[][..]
            } else {
                &["--watch-interval", "100ms"][..]
            })
            .arg("--api-token-file")
            .arg(fx.dir.path().join("token"))
            .args(&extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        crate::log::capture(child.stderr.take().unwrap(), &log);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(rest) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            std::thread::sleep(Duration::from_millis(200));
            panic!("server did not start: {line:?}\n{}", log.lock().unwrap());
        };
        let mut dns_all = Vec::new();
        let mut api = None;
        for part in rest.split_whitespace() {
            if let Some(v) = part.strip_prefix("dns=") {
                dns_all = v.split(',').map(|a| a.parse().unwrap()).collect();
            }
            if let Some(v) = part.strip_prefix("api=") {
                api = v.parse().ok();
            }
        }
        Server {
            child,
            dns: dns_all[0],
            dns_all,
            api: api.unwrap(),
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `cond` holds, polling; panics with `what` after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        wait_for(what, limit, &mut cond, || self.log())
    }

    pub fn api_get(&self, path: &str) -> (u16, String) {
        http(self.api, "GET", path, None, None)
    }

    pub fn api_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        http(self.api, method, path, body, token)
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.api_get("/v1/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The status entry of one DC of example.com.
    pub fn dc(&self, name: &str) -> serde_json::Value {
        let s = self.status();
        s["zones"][0]["datacenters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap()
    }

    pub fn query(&self, q: &Q) -> Message {
        udp_query(self.dns, q, None).expect("no UDP answer")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query to build.
#[derive(Clone, Debug)]
pub struct Q {
    pub name: String,
    pub qtype: RecordType,
    pub ecs: Option<(IpAddr, u8)>,
    pub edns: bool,
    pub payload: u16,
    pub id: u16,
}

impl Q {
    pub fn new(name: &str, qtype: RecordType) -> Q {
        Q {
            name: name.into(),
            qtype,
            ecs: None,
            edns: true,
            payload: 1232,
            id: 0x4242,
        }
    }

    pub fn ecs(mut self, subnet: &str) -> Q {
        let (a, p) = subnet.split_once('/').unwrap();
        self.ecs = Some((a.parse().unwrap(), p.parse().unwrap()));
        self
    }

    pub fn no_edns(mut self) -> Q {
        self.edns = false;
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii(&self.name).unwrap(),
            self.qtype,
        ));
        if self.edns {
            let mut e = Edns::new();
            e.set_max_payload(self.payload);
            if let Some((a, p)) = self.ecs {
                e.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(a, p, 0)));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }
}

pub fn udp_query(server: SocketAddr, q: &Q, bind: Option<IpAddr>) -> Option<Message> {
    let raw = udp_raw(server, &q.to_bytes(), bind)?;
    Some(Message::from_vec(&raw).expect("server sent an unparsable message"))
}

/// Sends raw bytes over UDP and returns the raw answer (None on timeout).
pub fn udp_raw(server: SocketAddr, bytes: &[u8], bind: Option<IpAddr>) -> Option<Vec<u8>> {
    let local: SocketAddr = (bind.unwrap_or("127.0.0.1".parse().unwrap()), 0).into();
    let sock = UdpSocket::bind(local).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(bytes, server).unwrap();
    let mut buf = [0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw bytes over TCP (length-prefixed) and returns the raw answer.
pub fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(bytes).unwrap();
    read_framed(&mut s).unwrap()
}

/// One length-prefixed DNS message from a TCP stream.
pub fn read_framed(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

/// `boltz check PATH`: its exit code and what it printed.
pub fn boltz_check(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(BOLTZ).arg("check").arg(path).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn tcp_query(server: SocketAddr, q: &Q) -> Message {
    Message::from_vec(&tcp_raw(server, &q.to_bytes())).unwrap()
}

/// The A/AAAA addresses of an answer, as strings.
pub fn addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

/// The ECS option of a response: (source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(u8, u8)> {
    let e = m.edns.as_ref()?;
    match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some((cs.source_prefix(), cs.scope_prefix())),
        _ => None,
    }
}

/// Runs `boltz ARGS` (in `dir`, else here) and asserts it succeeded,
/// showing its output when it did not.
pub fn boltz_ok<I, A>(args: I, dir: Option<&Path>) -> std::process::Output
where
    I: IntoIterator<Item = A>,
    A: AsRef<OsStr>,
{
    let mut cmd = Command::new(BOLTZ);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "boltz {:?}: {}{}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One HTTP/1.1 request to `boltz serve`'s local API over TCP.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    http_over(s, &addr.to_string(), method, path, body, token)
}

/// A real HTTP endpoint on loopback (health check or load feed) that
/// answers 200 with a body the test can change, and can be stopped and
/// started again on the same port.
pub struct HttpServer {
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub type HealthServer = HttpServer;

impl HttpServer {
    /// Serves "ok".
    pub fn start(port: u16) -> HttpServer {
        Self::with_body(port, "ok")
    }

    pub fn with_body(port: u16, body: &str) -> HttpServer {
        let listener = bind_retry(port);
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let body = Arc::new(Mutex::new(body.to_string()));
        let (s2, b2) = (stop.clone(), body.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                        let mut buf = [0u8; 2048];
                        let _ = c.read(&mut buf);
                        let body = b2.lock().unwrap().clone();
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer {
            addr,
            body,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_body(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }

    pub fn stop(mut self) -> u16 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.addr.port()
    }
}

fn bind_retry(port: u16) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
        }
    }
}

pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
