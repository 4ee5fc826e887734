//! The data plane's report from a real `boltz l7`: a pool that loses a
//! backend halves the DC's effective capacity, one that loses all takes
//! the DC down, and so does the daemon going away; load through the proxy
//! shows as utilisation against the effective capacity.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boltz_site::{Health, Report, SyncState};

use crate::harness::{declaration, status, Running};
use crate::l7_process::L7;
use crate::origin::Origin;
use crate::wait::wait_for;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn backend_health_and_load_become_capacity_utilisation_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Origin::start(), Origin::start());
    let mut l7 = L7::start(dir.path(), None);
    let run = Running::new(dir.path(), &declaration(&l7.api(), &[&a, &b], None));
    let st = run.reconcile();
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    {
        let r = reports.clone();
        let _g = run.rt.enter();
        boltz_site::spawn_reports(run.desired.subscribe(), move |rep| {
            r.lock().unwrap().push(rep)
        });
    }
    let last = || reports.lock().unwrap().last().cloned();
    wait_for(
        "in sync",
        LIMIT,
        &mut || status(&st).state == SyncState::InSync,
        || l7.log(),
    );
    wait_for(
        "both backends up: the whole capacity",
        LIMIT,
        &mut || last().is_some_and(|r| r.health == Health::Up && r.capacity == 1000.0),
        || format!("{:?}\n{}", last(), l7.log()),
    );

    // Reports come on multiples of the 200 ms interval, numbered by it.
    let seqs: Vec<u64> = reports.lock().unwrap().iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");

    // Load: 60 requests through the proxy within a report interval or two
    // show as a utilisation above zero (against 1000 requests/s).
    for _ in 0..60 {
        assert_eq!(l7.fetch(), 200);
    }
    wait_for(
        "utilisation from the proxied requests",
        LIMIT,
        &mut || last().is_some_and(|r| r.utilisation > 0.0),
        || format!("{:?}", last()),
    );
    // And where they came from: the proxy counts requests per client
    // prefix (here all from loopback).
    wait_for(
        "the clients' prefix",
        LIMIT,
        &mut || {
            last().is_some_and(|r| {
                r.clients
                    .iter()
                    .any(|(p, rate)| p == "127.0.0.0/24" && *rate > 0.0)
            })
        },
        || format!("{:?}", last()),
    );

    // One of two backends fails its health check: half the capacity,
    // still up (0.5 is not below degraded_below 0.5).
    a.behaviour.health_status.store(500, Relaxed);
    wait_for(
        "half the capacity",
        LIMIT,
        &mut || last().is_some_and(|r| r.capacity == 500.0),
        || format!("{:?}\n{}", last(), l7.log()),
    );
    let r = last().unwrap();
    assert_eq!(r.health, Health::Up);
    assert_eq!(
        r.reason.as_deref(),
        Some("pool web: 1 of 2 backends take traffic")
    );

    // Both fail: down, with the reason.
    b.behaviour.health_status.store(500, Relaxed);
    wait_for(
        "down",
        LIMIT,
        &mut || last().is_some_and(|r| r.health == Health::Down),
        || format!("{:?}\n{}", last(), l7.log()),
    );
    assert!(last()
        .unwrap()
        .reason
        .unwrap()
        .contains("no backend takes traffic"));

    // Healthy again, then the daemon dies: down once two reports failed.
    a.behaviour.health_status.store(200, Relaxed);
    b.behaviour.health_status.store(200, Relaxed);
    wait_for(
        "up again",
        LIMIT,
        &mut || last().is_some_and(|r| r.health == Health::Up),
        || format!("{:?}", last()),
    );
    l7.kill();
    wait_for(
        "down without its daemon",
        LIMIT,
        &mut || last().is_some_and(|r| r.health == Health::Down),
        || format!("{:?}", last()),
    );
    assert!(last().unwrap().reason.unwrap().starts_with("l7: "));
}
