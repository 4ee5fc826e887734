//! The README's demo with XDP in front (`demo/netns.sh`, root) as an
//! operator runs it: `dig` in the client namespace gets each site's VIP
//! for a client near it, `curl` fetches through XDP → IP-in-IP → L7 →
//! origin, and SIGTERM removes every namespace the script made.

use std::process::Command;
use std::time::Duration;

use crate::netns::missing;
use crate::script::Script;
use crate::wait::wait_for;
use crate::BOLTZ;

/// `CMD ARGS` in the demo's client namespace: its stdout, trimmed.
fn client(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", "bzdemo-c"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_xdp_demo_runs() {
    let tools = ["dig", "curl", "python3"]
        .into_iter()
        .find(|t| Command::new(t).arg("-v").output().is_err());
    if let Some(why) = missing().or(tools.map(|_| "the demo needs dig, curl and python3")) {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BOLTZ", BOLTZ.to_string()),
        ("DEMO_DIR", dir.path().display().to_string()),
    ];
    let mut up = Script::start("netns.sh", &env);
    let log = || std::fs::read_to_string(dir.path().join("dns-fra.log")).unwrap_or_default();
    let limit = Duration::from_secs(30);
    let dig = |server: &str, subnet: &str| {
        client(&[
            "dig",
            &format!("@{server}"),
            "www.example.com",
            &format!("+subnet={subnet}"),
            "+short",
            "+time=1",
            "+tries=1",
        ])
    };
    wait_for(
        "London answered with fra's VIP",
        limit,
        &mut || dig("10.99.0.11", "81.2.69.0/24") == "10.99.1.100",
        log,
    );
    assert_eq!(dig("10.99.0.21", "67.43.156.0/24"), "10.99.2.100");
    wait_for(
        "fra's VIP serving through XDP and L7",
        limit,
        &mut || {
            client(&["curl", "-s", "-m", "2", "http://10.99.1.100/"]).starts_with("hello from fra-")
        },
        log,
    );
    assert!(
        client(&["curl", "-s", "-m", "2", "http://10.99.2.100/"]).starts_with("hello from iad-")
    );

    up.stop();
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(!left.contains("bzdemo-"), "namespaces left: {left}");
    // `down` after a clean stop finds nothing to remove and says so by
    // succeeding.
    up.run(&["down"]);
}
