//! The reconcile loop against a real `boltz l7`: it pushes the declared
//! pools and routes, finds a daemon that restarted empty or drifted and
//! pushes again without looping, backs off while the daemon is away, and
//! reports a daemon that refuses it.

use std::time::Duration;

use boltz_site::SyncState;

use crate::harness::{declaration, status, Running};
use crate::l7_process::{free_port, L7};
use crate::origin::Origin;
use crate::wait::wait_for;

const LIMIT: Duration = Duration::from_secs(10);

/// Waits until the loop `st` says the daemon holds the declaration.
fn in_sync(st: &boltz_site::Shared, l7: &L7) {
    wait_for(
        "in sync",
        LIMIT,
        &mut || status(st).state == SyncState::InSync,
        || l7.log(),
    );
}

#[test]
fn pools_and_routes_are_pushed_and_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let o = Origin::start();
    let l7 = L7::start(dir.path(), None);
    let run = Running::new(dir.path(), &declaration(&l7.api(), &[&o], None));
    let st = run.reconcile();
    in_sync(&st, &l7);
    let pools = l7.get("/v1/pools");
    assert_eq!(pools["pools"]["web"]["version"], 1, "{pools}");
    let routes = l7.get("/v1/routes");
    assert_eq!(routes["routes"][0]["pool"], "web", "{routes}");
    assert_eq!(l7.fetch(), 200);
    assert!(o.requests() >= 1);
    let s = status(&st);
    assert_eq!(s.versions.get("web"), Some(&1));
    assert_eq!(s.pushes, 2, "one pool, one route list");

    // A new declaration (a reload): a second pool replaces the first in
    // the route; the first is deleted once no route names it.
    let o2 = Origin::start();
    let text = declaration(&l7.api(), &[&o2], None)
        .replace("pools.web]", "pools.api]")
        .replace("pool = \"web\"", "pool = \"api\"");
    run.declare(&text);
    wait_for(
        "the new pool alone",
        LIMIT,
        &mut || {
            let p = l7.get("/v1/pools");
            p["pools"].get("web").is_none() && p["pools"].get("api").is_some()
        },
        || l7.log(),
    );
    assert_eq!(l7.get("/v1/routes")["routes"][0]["pool"], "api");
    let before = o2.requests();
    assert_eq!(l7.fetch(), 200);
    assert!(o2.requests() > before);
}

#[test]
fn a_daemon_that_restarted_empty_or_drifted_is_pushed_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = Origin::start();
    let mut l7 = L7::start(dir.path(), None);
    let run = Running::new(dir.path(), &declaration(&l7.api(), &[&o], None));
    let st = run.reconcile();
    in_sync(&st, &l7);

    // Restarted empty: the next pass (every second) pushes again.
    l7.restart();
    assert!(l7.get("/v1/pools")["pools"].get("web").is_none());
    wait_for(
        "the pool pushed again",
        LIMIT,
        &mut || l7.get("/v1/pools")["pools"].get("web").is_some(),
        || l7.log(),
    );
    wait_for(
        "routes pushed again",
        LIMIT,
        &mut || l7.fetch() == 200,
        || l7.log(),
    );

    // Drift: someone pushes another backend set with a higher version.
    let o2 = Origin::start();
    let (code, body) = l7.api_call(
        "PUT",
        "/v1/pools/web",
        Some(&format!(
            r#"{{"version": 50, "backends": [{{"address": "{}"}}]}}"#,
            o2.addr
        )),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(
        "the declared pool back, above the drifted version",
        LIMIT,
        &mut || l7.get("/v1/pools")["pools"]["web"]["version"] == 51,
        || l7.log(),
    );
    let backends = l7.get("/v1/pools/web")["backends"].clone();
    assert_eq!(backends[0]["address"], o.addr.to_string(), "{backends}");

    // No push loop: in sync, the count stands still over several passes.
    in_sync(&st, &l7);
    let pushes = status(&st).pushes;
    std::thread::sleep(Duration::from_millis(3500));
    let s = status(&st);
    assert_eq!(s.pushes, pushes, "{s:?}");
    assert_eq!(s.state, SyncState::InSync);
}

#[test]
fn a_daemon_that_is_away_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let o = Origin::start();
    // Declared before the daemon exists.
    let sock = dir.path().join("l7.sock");
    let run = Running::new(
        dir.path(),
        &declaration(&format!("unix:{}", sock.display()), &[&o], None),
    );
    let st = run.reconcile();
    wait_for(
        "unreachable",
        LIMIT,
        &mut || status(&st).state == SyncState::Unreachable,
        String::new,
    );
    std::thread::sleep(Duration::from_secs(4));
    let s = status(&st);
    // 0.25 + 0.5 + 1 + 2 s: about five tries in four seconds, not sixteen.
    assert!((3..=6).contains(&s.failures), "{s:?}");
    assert!(
        s.error.as_deref().unwrap_or("").contains("connect"),
        "{s:?}"
    );

    let l7 = L7::start(dir.path(), None);
    wait_for(
        "in sync once the daemon is there",
        LIMIT,
        &mut || status(&st).state == SyncState::InSync,
        || l7.log(),
    );
    assert_eq!(l7.fetch(), 200);
}

#[test]
fn a_daemon_that_refuses_the_push_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let o = Origin::start();
    let l7 = L7::start(dir.path(), Some(free_port()));
    std::fs::write(dir.path().join("wrong.token"), "nope\n").unwrap();
    let run = Running::new(
        dir.path(),
        &declaration(&l7.api(), &[&o], Some("wrong.token")),
    );
    let st = run.reconcile();
    wait_for(
        "rejected",
        LIMIT,
        &mut || status(&st).state == SyncState::Rejected,
        || l7.log(),
    );
    let s = status(&st);
    assert!(s.error.as_deref().unwrap_or("").contains("401"), "{s:?}");
    assert!(l7.get("/v1/pools")["pools"].get("web").is_none());

    // The right token (a reload of the declaration): in sync.
    std::fs::write(dir.path().join("right.token"), "s3cret\n").unwrap();
    run.declare(&declaration(&l7.api(), &[&o], Some("right.token")));
    wait_for(
        "in sync with the token",
        LIMIT,
        &mut || status(&st).state == SyncState::InSync,
        || l7.log(),
    );
    assert_eq!(l7.fetch(), 200);
}
