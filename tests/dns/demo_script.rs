//! The README's loopback demo (`demo/run.sh`) as a newcomer runs it: the
//! script starts two sites (DNS node, L7 proxy, python3 origins), `dig`
//! gets an address the proxy answers on, stopping a DC's origins moves its
//! clients to the other DC, and SIGTERM stops everything it started.

use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::harness::{addrs, http, udp_query, wait_for, Q};
use crate::l7_process::free_port;
use crate::script::Script;
use crate::BOLTZ;

/// python3 serves the demo's origins, curl drives its load.
fn missing_tool() -> Option<&'static str> {
    ["python3", "curl"]
        .into_iter()
        .find(|t| Command::new(t).arg("--version").output().is_err())
}

#[test]
fn the_loopback_demo_runs_and_moves_answers() {
    if let Some(t) = missing_tool() {
        eprintln!("skipped: the demo needs {t}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Ports away from the defaults and from other tests' (DNS on PORT and
    // PORT+1, APIs on PORT+27/28, origins from PORT+3800).
    let port = 20000 + (std::process::id() % 2000) as u16 * 2;
    let proxy = free_port();
    let env = [
        ("BOLTZ", BOLTZ.to_string()),
        ("DEMO_DIR", dir.path().display().to_string()),
        ("DEMO_PORT", port.to_string()),
        ("DEMO_PROXY_PORT", proxy.to_string()),
    ];
    let mut up = Script::start("run.sh", &env);
    let run = |args: &[&str]| up.run(args);
    let dns = format!("127.0.0.1:{port}").parse().unwrap();
    let london = || {
        udp_query(
            dns,
            &Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24"),
            None,
        )
        .map(|m| addrs(&m))
    };
    let log = || std::fs::read_to_string(dir.path().join("dns-fra.log")).unwrap_or_default();
    let limit = Duration::from_secs(30);
    wait_for(
        "the demo answering London with fra",
        limit,
        &mut || london() == Some(vec!["127.0.0.2".to_string()]),
        log,
    );
    let fra = format!("127.0.0.2:{proxy}").parse().unwrap();
    wait_for(
        "fra's proxy serving its origins",
        limit,
        &mut || {
            http(fra, "GET", "/", None, None)
                .1
                .contains("hello from fra-")
        },
        log,
    );
    assert!(run(&["show"]).contains("node of fra: components l7 in-sync"));

    run(&["stop-origin", "fra-1"]);
    run(&["stop-origin", "fra-2"]);
    wait_for(
        "London moved to iad",
        limit,
        &mut || london() == Some(vec!["127.0.0.3".to_string()]),
        log,
    );
    assert!(run(&["show"]).contains("no backend takes traffic"));

    // SIGTERM: the script stops what it started.
    up.stop();
    wait_for(
        "everything stopped",
        limit,
        &mut || london().is_none() && !dir.path().join("pids").exists(),
        log,
    );
}
