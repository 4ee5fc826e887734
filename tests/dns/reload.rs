//! Reload: a zone changed while a client queries in a loop is picked up with
//! no failed query; a broken edit is logged and the old zones keep serving;
//! SIGHUP forces a reload; health and drain state survive a reload; the
//! shared `datacenters.toml` is watched like a zone file.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn edits_apply_without_a_failed_query_and_broken_edits_are_rejected() {
    let fx = Fixture::new(&zone_toml(
        "",
        &[],
        "extra = { type = \"A\", values = [\"192.0.2.1\"] }",
    ));
    let srv = fx.serve();
    let dns = srv.dns;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, ok, bad) = (stop.clone(), ok.clone(), bad.clone());
        std::thread::spawn(move || {
            let q = Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24");
            while !stop.load(Ordering::Relaxed) {
                match udp_query(dns, &q, None) {
                    Some(r)
                        if r.metadata.response_code == ResponseCode::NoError
                            && r.answers.len() == 1 =>
                    {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    let extra = |n: u32| format!("extra = {{ type = \"A\", values = [\"192.0.2.{n}\"] }}");
    let extra_of = || addrs(&srv.query(&Q::new("extra.example.com.", RecordType::A)));
    for n in 2..8 {
        write_atomic(&fx.zone_file(), &zone_toml("", &[], &extra(n)));
        srv.wait_for("reload", Duration::from_secs(10), || {
            extra_of() == vec![format!("192.0.2.{n}")]
        });
    }

    // A broken edit: logged with file:line:col, old zone keeps answering.
    let broken = zone_toml("", &[], &extra(9))
        .replace("[\"fra\", \"iad\", \"sin\"]", "[\"fra\", \"nowhere\"]");
    write_atomic(&fx.zone_file(), &broken);
    srv.wait_for("rejection logged", Duration::from_secs(10), || {
        srv.log().contains("unknown datacenter `nowhere`")
    });
    assert_eq!(extra_of(), vec!["192.0.2.7".to_string()]);
    let log = srv.log();
    let line = log.lines().find(|l| l.contains("nowhere")).unwrap();
    assert!(
        line.contains("example.com.toml:"),
        "diagnostic names the file: {line}"
    );

    // A file that is not even TOML.
    write_atomic(&fx.zone_file(), "origin = [");
    srv.wait_for("parse error logged", Duration::from_secs(10), || {
        srv.log().matches("zone reload rejected").count() >= 2
    });
    assert_eq!(extra_of(), vec!["192.0.2.7".to_string()]);

    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    assert!(ok > 50, "the client ran: {ok}");
    assert_eq!(
        bad,
        0,
        "{bad} of {} queries failed during reloads",
        ok + bad
    );
}

#[test]
fn editing_the_shared_datacenters_file_reloads_and_breaking_it_does_not() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let shared = fx.zones().join("datacenters.toml");
    let ams = |ip: &str| format!("[datacenters.ams]\nlocation = [52.37, 4.9]\nipv4 = [\"{ip}\"]\n");
    let ams_of = || addrs(&srv.query(&Q::new("ams.example.com.", RecordType::A)));
    write_atomic(&shared, &ams("192.0.2.77"));
    write_atomic(
        &fx.zone_file(),
        &zone_toml(
            "",
            &[],
            "ams = { type = \"steered\", datacenters = [\"ams\"] }",
        ),
    );
    srv.wait_for("zone naming a shared DC", Duration::from_secs(10), || {
        ams_of() == ["192.0.2.77"]
    });
    // Only the shared file changes.
    write_atomic(&shared, &ams("192.0.2.78"));
    srv.wait_for("shared file reloaded", Duration::from_secs(10), || {
        ams_of() == ["192.0.2.78"]
    });
    // Broken: logged at its file:line:col, the old zones keep serving.
    write_atomic(&shared, &ams("192.0.2.79").replace("52.37", "95.0"));
    srv.wait_for("rejection logged", Duration::from_secs(10), || {
        srv.log()
            .contains("datacenters.toml:2:12: datacenters.ams.location: latitude 95")
    });
    assert_eq!(ams_of(), ["192.0.2.78"]);
}

#[test]
fn sighup_reloads_and_state_survives() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    // Watch effectively off: only SIGHUP reloads.
    let srv = Server::start(&fx, &["--watch-interval", "1h"]);
    let (code, _) = srv.api_send("POST", "/v1/datacenters/fra/drain", None, Some(TOKEN));
    assert_eq!(code, 200);

    write_atomic(
        &fx.zone_file(),
        &zone_toml("", &[], "new = { type = \"A\", values = [\"192.0.2.77\"] }"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let r = srv.query(&Q::new("new.example.com.", RecordType::A));
    assert_eq!(rcode(&r), ResponseCode::NXDomain, "no reload before SIGHUP");

    let pid = srv.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    srv.wait_for("SIGHUP reload", Duration::from_secs(10), || {
        addrs(&srv.query(&Q::new("new.example.com.", RecordType::A)))
            == vec!["192.0.2.77".to_string()]
    });
    assert_eq!(
        srv.dc("fra")["status"],
        "drained",
        "drain survives a reload"
    );
}

#[test]
fn geo_database_is_reread_when_it_changes() {
    let fx = Fixture::new(&zone_toml("", &[], ""));
    let srv = fx.serve();
    let q = Q::new("www.example.com.", RecordType::A).ecs("81.2.69.0/24");
    assert_eq!(addrs(&srv.query(&q)), vec![FRA.to_string()]);
    // Move 81.2.69.0/24 to Singapore.
    let csv = GEO_CSV.replace(
        "81.2.69.0/24,51.5142,-0.0931,GB,EU",
        "81.2.69.0/24,1.3,103.8,SG,AS",
    );
    std::fs::write(fx.dir.path().join("geo2.csv"), csv).unwrap();
    let out = std::process::Command::new(BOLTZ)
        .args(["geoip", "build"])
        .arg(fx.dir.path().join("geo2.csv"))
        .arg("-o")
        .arg(fx.geo())
        .output()
        .unwrap();
    assert!(out.status.success());
    srv.wait_for("new geo data", Duration::from_secs(10), || {
        addrs(&srv.query(&q)) == vec![SIN.to_string()]
    });
}
