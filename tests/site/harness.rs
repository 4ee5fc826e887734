//! Harness for the site tests: a real `boltz l7` process (the binary under
//! test) with its API on a Unix socket or on loopback TCP, which a test can
//! kill and start again; a site declaration pointing at it; and the
//! reconcile loop or report of `boltz-site` running on a runtime of the
//! test's own.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boltz_site::{ComponentStatus, Shared, Site};
use tokio::sync::watch;

use crate::api::http_over;
use crate::origin::Origin;
use crate::BOLTZ;

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `boltz l7` process: one listener, no pools (what the site pushes).
pub struct L7 {
    pub dir: PathBuf,
    pub listen: u16,
    /// `Some(port)`: the API on loopback TCP with the token `s3cret`.
    pub tcp_api: Option<u16>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl L7 {
    pub fn start(dir: &Path, tcp_api: Option<u16>) -> L7 {
        let mut l7 = L7 {
            dir: dir.to_path_buf(),
            listen: free_port(),
            tcp_api,
            child: None,
            log: Arc::default(),
        };
        l7.spawn();
        l7
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.join("l7.sock")
    }

    /// The `api = ...` a site declares for this daemon.
    pub fn api(&self) -> String {
        match self.tcp_api {
            Some(p) => format!("http://127.0.0.1:{p}"),
            None => format!("unix:{}", self.sock().display()),
        }
    }

    fn spawn(&mut self) {
        let config = self.dir.join("l7.toml");
        std::fs::write(
            &config,
            format!(
                "workers = 1\ncapacity_rps = 1000\n[[listeners]]\naddress = \"127.0.0.1:{}\"\n",
                self.listen
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(self.sock());
        let mut cmd = Command::new(BOLTZ);
        cmd.arg("l7").arg("--config").arg(&config);
        match self.tcp_api {
            Some(p) => {
                let token = self.dir.join("l7.token");
                std::fs::write(&token, "s3cret\n").unwrap();
                cmd.arg("--api")
                    .arg(format!("127.0.0.1:{p}"))
                    .arg("--api-token-file")
                    .arg(token);
            }
            None => {
                cmd.arg("--api")
                    .arg(format!("unix:{}", self.sock().display()));
            }
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let mut g = log.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        // `ready listen=...` once the listeners are bound, then `ready
        // api=...` once the API is.
        let mut lines = out.lines();
        let api_ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("ready api="));
        assert!(
            api_ready,
            "boltz l7 ended before its API was up\n{}",
            self.log()
        );
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: the daemon and everything pushed to it are gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A fresh daemon, empty, on the same socket and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// One request to the daemon's API (with the token over TCP).
    pub fn api_call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        match self.tcp_api {
            Some(p) => {
                let s = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
                http_over(s, "l7", method, path, body, Some("s3cret"))
            }
            None => {
                let s = UnixStream::connect(self.sock()).unwrap();
                http_over(s, "l7", method, path, body, None)
            }
        }
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.api_call("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `GET /` through the proxy: the status.
    pub fn fetch(&self) -> u16 {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.listen)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        http_over(s, "www.example.com", "GET", "/", None, None).0
    }
}

impl Drop for L7 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `datacenters.toml` of one DC, `fra`, whose L7 is `api` with one pool of
/// `origins` (health-checked on `/healthz` every 100 ms) and a route to it.
pub fn declaration(api: &str, origins: &[&Origin], token_file: Option<&str>) -> String {
    let backends: Vec<String> = origins
        .iter()
        .map(|o| format!("{{ address = \"{}\" }}", o.addr))
        .collect();
    let token = token_file.map_or(String::new(), |t| format!("token_file = \"{t}\"\n"));
    format!(
        r#"[datacenters.fra]
location = [50.11, 8.68]
capacity = 1000
ipv4 = ["127.0.0.1"]

[datacenters.fra.dataplane]
interval = "200ms"

[datacenters.fra.l7]
api = "{api}"
{token}
[datacenters.fra.l7.pools.web]
health = {{ path = "/healthz", interval = "100ms", timeout = "1s", rise = 1, fall = 1 }}
backends = [{}]

[[datacenters.fra.l7.routes]]
pool = "web"
"#,
        backends.join(", ")
    )
}

/// A site's loops on a runtime of their own; the declaration can be
/// replaced (a reload).
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub desired: watch::Sender<Arc<Site>>,
    pub dir: PathBuf,
}

impl Running {
    pub fn new(dir: &Path, text: &str) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let site = load(dir, text);
        let (desired, _) = watch::channel(Arc::new(site));
        Running {
            rt,
            desired,
            dir: dir.to_path_buf(),
        }
    }

    pub fn reconcile(&self) -> Shared {
        let rx = self.desired.subscribe();
        let _g = self.rt.enter();
        boltz_site::spawn_reconcile(boltz_site::Kind::L7, rx)
    }

    /// Replaces the declaration (as a reload does).
    pub fn declare(&self, text: &str) {
        self.desired.send_replace(Arc::new(load(&self.dir, text)));
    }
}

/// `text` written as `dir/datacenters.toml` and checked: DC `fra`.
pub fn load(dir: &Path, text: &str) -> Site {
    let file = dir.join("datacenters.toml");
    std::fs::write(&file, text).unwrap();
    boltz_site::load(&file, "fra").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn status(s: &Shared) -> ComponentStatus {
    s.lock().unwrap().clone()
}
