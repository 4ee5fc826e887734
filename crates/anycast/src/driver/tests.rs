use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::*;
use crate::announce::Want;
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
    let dir = tempfile::tempdir().unwrap();
    let drain_file = dir.path().join("drain");
    let text = format!(
        "drain_file = {:?}\n{FILE}",
        drain_file.display().to_string()
    );
    let cfg = parse(Path::new("anycast.toml"), &text).unwrap();
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
            listen: Vec::new(),
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

    // The drain file drains too (it survives restarts), and shows.
    std::fs::write(&drain_file, "").unwrap();
    until(&st, "draining by the file", |p| p.state == Want::Draining).await;
    assert!(st.document().drained && st.document().drain_file);
    std::fs::remove_file(&drain_file).unwrap();
    until(&st, "announced without the file", |p| {
        p.state == Want::Announced
    })
    .await;
    assert!(!st.document().drained);

    let changes = st.prefixes()[0].changes;
    assert!(changes >= 8, "{changes}");
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
            listen: Vec::new(),
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

#[test]
fn a_prefix_is_probed_where_the_server_listens() {
    let l = |s: &str| s.parse::<SocketAddr>().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let listen = [l("192.0.2.53:53"), l("[::]:5353")];
    assert_eq!(
        probe_target(&listen, ip("192.0.2.53")),
        Some(l("192.0.2.53:53"))
    );
    assert_eq!(
        probe_target(&listen, ip("2001:db8::53")),
        Some(l("[2001:db8::53]:5353"))
    );
    assert_eq!(probe_target(&listen, ip("192.0.2.54")), None);
}
