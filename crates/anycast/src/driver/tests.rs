use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::*;
use crate::config::parse;

const FILE: &str = r#"
speaker = "exabgp"
interval = "100ms"
rise = 1
fall = 1
hold_down = "0s"
drain_window = "300ms"

[[prefix]]
prefix = "192.0.2.80/32"
protocol = "vip"
check = "l4"
"#;

/// Waits until prefix 0 of `status` satisfies `cond`; its state then.
async fn until(
    status: &Status,
    what: &str,
    cond: impl Fn(&crate::status::PrefixState) -> bool,
) -> crate::status::PrefixState {
    for _ in 0..200 {
        let p = status.prefixes().remove(0);
        if cond(&p) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {what}: {:?}", status.prefixes());
}

#[tokio::test]
async fn an_l4_prefix_follows_its_vip_and_the_operator() {
    let cfg = parse(Path::new("anycast.toml"), FILE).unwrap();
    // 0: no report yet, 1: a backend takes flows, 2: none does.
    let vip = Arc::new(AtomicU8::new(0));
    let v = vip.clone();
    let health: VipHealth = Arc::new(move |ip| {
        assert_eq!(ip, "192.0.2.80".parse::<IpAddr>().unwrap());
        match v.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n == 1),
        }
    });
    let running = start(
        cfg,
        Options {
            dns_port: 0,
            vip_health: Some(health),
            guard_program: None,
        },
    )
    .await
    .unwrap();
    let st = running.status.clone();
    let p = until(&st, "failing without a report", |p| p.probe_error.is_some()).await;
    assert_eq!(p.state, Want::Withdrawn);
    assert!(p.reason.contains("no report of VIP 192.0.2.80"), "{p:?}");

    vip.store(1, Ordering::SeqCst);
    until(&st, "announced", |p| p.state == Want::Announced).await;
    vip.store(2, Ordering::SeqCst);
    let p = until(&st, "withdrawn", |p| p.state == Want::Withdrawn).await;
    assert!(
        p.reason
            .contains("no backend of VIP 192.0.2.80 takes new flows"),
        "{p:?}"
    );
    vip.store(1, Ordering::SeqCst);
    until(&st, "announced again", |p| p.state == Want::Announced).await;

    // A drain acts without waiting for a probe, and ends on its window.
    assert!(st.set_drained(true));
    assert!(!st.set_drained(true), "draining twice changes nothing");
    let p = until(&st, "draining", |p| p.state == Want::Draining).await;
    assert_eq!(p.reason, "drained");
    until(&st, "withdrawn after the window", |p| {
        p.state == Want::Withdrawn
    })
    .await;
    assert!(st.set_drained(false));
    until(&st, "announced after undrain", |p| {
        p.state == Want::Announced
    })
    .await;

    let changes = st.prefixes()[0].changes;
    assert!(changes >= 6, "{changes}");
    running.stop().await;
    let p = st.prefixes().remove(0);
    assert_eq!((p.state, p.reason.as_str()), (Want::Withdrawn, "stopping"));
}

#[tokio::test]
async fn an_l4_prefix_needs_the_site() {
    let cfg = parse(Path::new("anycast.toml"), FILE).unwrap();
    let e = start(
        cfg,
        Options {
            dns_port: 0,
            vip_health: None,
            guard_program: None,
        },
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.contains("check = \"l4\", which needs --datacenter"),
        "{e}"
    );
}
