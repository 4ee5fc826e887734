//! ExaBGP as the speaker: site B runs ExaBGP instead of BIRD, and ExaBGP
//! runs `boltz anycast exabgp`, which follows B's `/v1/anycast`. The
//! router sees B announce, drain (tagged 65535:0), come back, and go when
//! boltz is killed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{anycast_file, missing, wait, World};

const B: usize = 1;

/// ExaBGP in site B's namespace, killed when dropped.
struct ExaBgp(Child);

impl Drop for ExaBgp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_exabgp(w: &World) -> ExaBgp {
    let conf = w.lan.dir.path().join("exabgp.conf");
    std::fs::write(
        &conf,
        format!(
            r#"process boltz {{
    run {} anycast exabgp --api http://127.0.0.1:5380;
    encoder text;
}}
neighbor 198.51.100.5 {{
    router-id 198.51.100.6;
    local-address 198.51.100.6;
    local-as 65002;
    peer-as 65000;
    family {{ ipv4 unicast; }}
    api {{ processes [ boltz ]; }}
}}
"#,
            crate::BOLTZ
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &w.lan.ns(World::key(B)), "exabgp"])
        .arg(&conf)
        .env("exabgp.daemon.user", "root")
        .env("exabgp.daemon.daemonize", "false")
        .env("exabgp.api.cli", "false")
        .env("exabgp.log.destination", "stderr")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ExaBgp(child)
}

fn b_path(w: &World) -> Option<bool> {
    w.paths()
        .into_iter()
        .find(|(gw, _)| gw == w.sites[B].addr)
        .map(|(_, gshut)| gshut)
}

#[test]
fn exabgp_announces_drains_and_withdraws_what_boltz_wants() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    if Command::new("exabgp").arg("--version").output().is_err() {
        eprintln!("skipped: needs ExaBGP (apt-get install exabgp)");
        return;
    }
    let mut w = World::new("bzae");
    w.sites[B].bird.stop();
    let _exabgp = start_exabgp(&w);
    w.set_anycast(B, &anycast_file("speaker = \"exabgp\""));
    let t = Instant::now();
    w.start_boltz(B);
    let limit = Duration::from_secs(20);
    wait("B announced through ExaBGP", limit, || {
        b_path(&w) == Some(false)
    });
    let up = t.elapsed();

    let (code, body) = w.api(B, "POST", "/v1/anycast/drain");
    assert_eq!(code, 200, "{body}");
    let tagged = wait("B tagged 65535:0", Duration::from_secs(3), || {
        b_path(&w) == Some(true)
    });
    let gone = wait(
        "B withdrawn after the window",
        Duration::from_secs(5),
        || b_path(&w).is_none(),
    );
    let (code, _) = w.api(B, "DELETE", "/v1/anycast/drain");
    assert_eq!(code, 200);
    wait("B back", Duration::from_secs(5), || {
        b_path(&w) == Some(false)
    });

    w.sites[B].boltz.as_mut().unwrap().kill();
    let killed = wait(
        "B withdrawn once boltz is dead",
        Duration::from_secs(3),
        || b_path(&w).is_none(),
    );
    println!(
        "exabgp: announced {:.2} s after start; drain tagged after {:.0} ms, withdrawn {:.2} s later; SIGKILL of boltz: withdrawn after {:.2} s (lost 1 s)",
        up.as_secs_f64(),
        tagged.as_secs_f64() * 1e3,
        gone.as_secs_f64(),
        killed.as_secs_f64()
    );
}
