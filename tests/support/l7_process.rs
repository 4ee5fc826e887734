//! A real `boltz l7` process (the binary under test) with its API on a
//! Unix socket or on loopback TCP (token `s3cret`), one listener and no
//! pools (what a site pushes), which a test can kill and start again.
//! Shared by the site and the DNS tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::http_over;
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
        crate::log::capture(child.stderr.take().unwrap(), &self.log);
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
