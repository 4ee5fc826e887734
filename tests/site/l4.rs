//! The reconcile loop against a real `boltz l4` (generic XDP on a veth in a
//! network namespace the test makes and removes; root): services pushed,
//! adopted as they are after the daemon restarts with its state, pushed
//! back after a change by hand, deleted once no longer declared.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use boltz_site::SyncState;

use crate::api::http_over;
use crate::harness::{status, Running};
use crate::wait::wait_for;
use crate::BOLTZ;

const LIMIT: Duration = Duration::from_secs(15);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why this machine cannot run the test, if it cannot.
fn cannot() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for a network namespace and XDP");
    }
    if !boltz_l4::dataplane::available() {
        return Some(
            "this build has no XDP programs (clang and libbpf-dev were missing at build time)",
        );
    }
    None
}

/// A namespace with a veth pair, a bpffs of its own and `boltz l4` on one
/// end, its API on a Unix socket.
struct L4 {
    ns: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl L4 {
    fn new() -> L4 {
        let l4 = L4 {
            ns: format!("bzsite{}", std::process::id() % 100_000),
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        sh(&["ip", "netns", "add", &l4.ns]);
        let ex = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &l4.ns];
            all.extend_from_slice(args);
            sh(&all);
        };
        ex(&[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        ex(&["ip", "addr", "add", "10.98.0.2/24", "dev", "eth0"]);
        for i in ["eth0", "eth1", "lo"] {
            ex(&["ip", "link", "set", i, "up"]);
        }
        std::fs::create_dir_all(l4.bpffs()).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", l4.bpffs().to_str().unwrap()]);
        l4
    }

    fn bpffs(&self) -> PathBuf {
        self.dir.path().join("bpf")
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("l4.sock")
    }

    fn start(&mut self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, BOLTZ, "l4", "--iface", "eth0"])
            .args(["--mode", "generic", "--keep-sysctls"])
            .arg("--api")
            .arg(format!("unix:{}", self.sock().display()))
            .arg("--bpffs")
            .arg(self.bpffs().join("lb"))
            .arg("--state")
            .arg(self.dir.path().join("state.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 256];
        let n = out.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("ready"),
            "boltz l4 did not start"
        );
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        self.daemon = Some(child);
        wait_for(
            "the l4 API",
            LIMIT,
            &mut || UnixStream::connect(self.sock()).is_ok(),
            String::new,
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        http_over(s, "l4", method, path, body, None)
    }

    /// VIP → (version, backend addresses) of what the daemon holds.
    fn services(&self) -> Vec<(String, u64, Vec<String>)> {
        let (code, body) = self.call("GET", "/v1/services", None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let backends = s["backends"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b["address"].as_str().unwrap().to_string())
                    .collect();
                (
                    s["vip"].as_str().unwrap().to_string(),
                    s["version"].as_u64().unwrap(),
                    backends,
                )
            })
            .collect()
    }
}

impl Drop for L4 {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, BOLTZ, "l4", "down", "--bpffs"])
            .arg(self.bpffs().join("lb"))
            .output();
        let _ = Command::new("umount").arg(self.bpffs()).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// `datacenters.toml` of DC `fra` whose L4 at `sock` has these services.
fn declaration(sock: &str, services: &[(&str, &[&str])]) -> String {
    let mut t = format!(
        "[datacenters.fra]\nlocation = [50.11, 8.68]\ncapacity = 1000\nipv4 = [\"10.98.1.100\"]\n\n\
         [datacenters.fra.l4]\napi = \"unix:{sock}\"\n"
    );
    for (vip, backends) in services {
        let b: Vec<String> = backends
            .iter()
            .map(|a| format!("{{ address = \"{a}\" }}"))
            .collect();
        t.push_str(&format!(
            "\n[[datacenters.fra.l4.services]]\nvip = \"{vip}\"\ncapacity_pps = 100000\nbackends = [{}]\n",
            b.join(", ")
        ));
    }
    t
}

#[test]
fn services_are_pushed_adopted_after_a_restart_restored_and_removed() {
    if let Some(why) = cannot() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut l4 = L4::new();
    l4.start();
    let sock = l4.sock().display().to_string();
    let both: [(&str, &[&str]); 2] = [
        ("tcp:10.98.1.100:80", &["10.98.0.11", "10.98.0.12"]),
        ("udp:10.98.1.100:53", &["10.98.0.11"]),
    ];
    let run = Running::new(l4.dir.path(), &declaration(&sock, &both));
    let _g = run.rt.enter();
    let st = boltz_site::spawn_reconcile(boltz_site::Kind::L4, run.desired.subscribe());
    wait_for(
        "in sync",
        LIMIT,
        &mut || status(&st).state == SyncState::InSync,
        String::new,
    );
    let held = l4.services();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|s| s.1 == 1), "{held:?}");
    assert_eq!(status(&st).pushes, 2);

    // The daemon restarts with its state: the services are there as
    // declared, so they are adopted, not pushed again.
    l4.kill();
    l4.start();
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&st);
    assert_eq!((s.state, s.pushes), (SyncState::InSync, 2), "{s:?}");
    assert_eq!(l4.services().len(), 2);

    // Changed by hand, with a higher version: the declaration comes back
    // above it.
    let (code, body) = l4.call(
        "PUT",
        "/v1/services/tcp:10.98.1.100:80",
        Some(r#"{"version": 9, "backends": [{"address": "10.98.0.13"}]}"#),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(
        "the declared backends back at version 10",
        LIMIT,
        &mut || {
            l4.services().iter().any(|s| {
                s.0 == "tcp:10.98.1.100:80" && s.1 == 10 && s.2 == ["10.98.0.11", "10.98.0.12"]
            })
        },
        String::new,
    );

    // A service no longer declared is deleted.
    run.declare(&declaration(&sock, &both[..1]));
    wait_for(
        "the UDP service gone",
        LIMIT,
        &mut || l4.services().len() == 1,
        String::new,
    );
    assert_eq!(l4.services()[0].0, "tcp:10.98.1.100:80");
}
