//! The reconcile loop against a real `boltz l4` (generic XDP on a veth in a
//! network namespace the test makes and removes; root): services pushed,
//! adopted as they are after the daemon restarts with its state, pushed
//! back after a change by hand, deleted once no longer declared.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use boltz_site::SyncState;

use crate::api::http_over;
use crate::harness::{status, Running};
use crate::netns::{missing, Daemon, Lan};
use crate::wait::wait_for;

const LIMIT: Duration = Duration::from_secs(15);

/// One host on a LAN of its own running `boltz l4` (generic XDP on its
/// `eth0`), its API on a Unix socket.
struct L4 {
    lan: Lan,
    daemon: Option<Daemon>,
}

impl L4 {
    fn new() -> L4 {
        let mut lan = Lan::new("bzl4r");
        lan.host("l4", "10.98.0.2");
        L4 { lan, daemon: None }
    }

    fn sock(&self) -> PathBuf {
        self.lan.dir.path().join("l4.sock")
    }

    fn start(&mut self) {
        let api = format!("unix:{}", self.sock().display());
        let state = self.lan.dir.path().join("state.json");
        self.daemon = Some(self.lan.l4("l4", &api, &state, &["--keep-sysctls"]));
        wait_for(
            "the l4 API",
            LIMIT,
            &mut || UnixStream::connect(self.sock()).is_ok(),
            String::new,
        );
    }

    fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
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
    if let Some(why) = missing() {
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
    let run = Running::new(l4.lan.dir.path(), &declaration(&sock, &both));
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
    // The site's report says, per declared VIP, whether a backend takes
    // new flows (what an anycast VIP's announcement follows).
    let (tx, rx) = std::sync::mpsc::channel();
    let reports = boltz_site::spawn_reports(run.desired.subscribe(), move |r| {
        let _ = tx.send(r.vips);
    });
    let mut vips = rx.recv_timeout(LIMIT).expect("a report");
    vips.sort();
    assert_eq!(
        vips,
        [
            ("tcp:10.98.1.100:80".to_string(), true),
            ("udp:10.98.1.100:53".to_string(), true)
        ]
    );
    reports.abort();

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
