//! Issue 15's six steps, in order, on one world (router + two sites):
//! both announce (ECMP); drain A; SIGTERM A; SIGKILL A (and a hung A);
//! break A's DNS; restart A's BIRD. Each prints what it measured; lost
//! queries are counted by the client behind the router.

use std::time::{Duration, Instant};

use crate::harness::{missing, wait, Client, World, ANYCAST};

const A: usize = 0;
const B: usize = 1;
const BOTH: [&str; 2] = ["198.51.100.2", "198.51.100.6"];
const ONLY_B: [&str; 1] = ["198.51.100.6"];

fn fib_is(w: &World, hops: &[&str]) -> bool {
    w.fib() == hops
}

/// Waits for the router's kernel to use exactly `hops`.
fn wait_fib(w: &World, what: &str, limit: Duration, hops: &[&str]) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fib_is(w, hops) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "timed out waiting for {what}: FIB {:?}, paths {:?}\nsite a:\n{}\nsite b:\n{}",
        w.fib(),
        w.paths(),
        w.log(A),
        w.log(B)
    );
}

fn a_has_path(w: &World) -> bool {
    w.paths().iter().any(|(gw, _)| gw == w.sites[A].addr)
}

/// Lets the client settle what it has in flight (its timeout is 400 ms),
/// then the counts since `t`.
fn settle(c: &Client, t: Instant) -> (usize, usize, usize) {
    std::thread::sleep(Duration::from_millis(500));
    c.since(t)
}

#[test]
fn anycast_follows_health_drain_stop_crash_and_bird_restarts() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut w = World::new("bzas");
    let mut report = Vec::new();
    refuses_what_bird_does_not_know(&w);

    // 1. Both sites announce; the router has both paths (ECMP), and the
    //    client hears both.
    let t = Instant::now();
    w.start_boltz(A);
    w.start_boltz(B);
    wait_fib(&w, "both sites announced", Duration::from_secs(20), &BOTH);
    let up = t.elapsed();
    let client = Client::start(&w);
    let t1 = Instant::now();
    wait("answers from both sites", Duration::from_secs(10), || {
        let (a, b, _) = client.since(t1);
        a >= 5 && b >= 5
    });
    let (a, b, lost) = client.since(t1);
    report.push(format!(
        "1. announced after start: {:.2} s; ECMP {:?}; client: a {a}, b {b}, lost {lost}",
        up.as_secs_f64(),
        w.fib()
    ));
    assert_eq!(lost, 0, "queries lost with both sites up");
    assert_eq!(w.prefix_state(A)["state"], "announced");
    assert_eq!(w.prefix_state(A)["reason"], "healthy");

    // 2. Drain A: the graceful-shutdown variant first (the router prefers
    //    B at once), withdrawn after the window; nothing lost.
    let t2 = Instant::now();
    let (code, body) = w.api(A, "POST", "/v1/anycast/drain");
    assert_eq!(code, 200, "{body}");
    let moved = wait_fib(
        &w,
        "B preferred during A's drain",
        Duration::from_secs(10),
        &ONLY_B,
    );
    assert!(
        w.paths()
            .iter()
            .any(|(gw, gshut)| gw == w.sites[A].addr && *gshut),
        "A's path should still be there, tagged (65535,0): {:?}",
        w.paths()
    );
    assert_eq!(w.prefix_state(A)["state"], "draining");
    let gone = wait("A's drained path withdrawn", Duration::from_secs(6), || {
        !a_has_path(&w)
    });
    let (a, b, lost) = settle(&client, t2);
    assert_eq!(w.prefix_state(A)["state"], "withdrawn");
    assert_eq!(w.prefix_state(A)["reason"], "drained");
    report.push(format!(
        "2. drain: B preferred after {:.0} ms, A withdrawn after {:.2} s (window 2 s); client: a {a}, b {b}, lost {lost}",
        moved.as_secs_f64() * 1e3,
        (gone + moved).as_secs_f64()
    ));
    assert_eq!(lost, 0, "queries lost during the drain");
    let (code, _) = w.api(A, "DELETE", "/v1/anycast/drain");
    assert_eq!(code, 200);
    let back = wait_fib(&w, "A back after undrain", Duration::from_secs(5), &BOTH);
    report.push(format!(
        "   undrain: A back after {:.2} s",
        back.as_secs_f64()
    ));

    // 3. SIGTERM A's boltz: withdrawn before it stops, nothing lost.
    let t3 = Instant::now();
    w.sites[A].boltz.as_ref().unwrap().signal(libc::SIGTERM);
    let withdrawn = wait_fib(
        &w,
        "A withdrawn on SIGTERM",
        Duration::from_secs(10),
        &ONLY_B,
    );
    let exited = w.sites[A]
        .boltz
        .as_mut()
        .unwrap()
        .wait_exit(Duration::from_secs(5));
    assert!(exited, "boltz did not stop after SIGTERM\n{}", w.log(A));
    let stopped = t3.elapsed();
    let (a, b, lost) = settle(&client, t3);
    report.push(format!(
        "3. SIGTERM: withdrawn after {:.0} ms, process gone after {:.2} s (stop_wait 1 s); client: a {a}, b {b}, lost {lost}",
        withdrawn.as_secs_f64() * 1e3,
        stopped.as_secs_f64()
    ));
    assert_eq!(lost, 0, "queries lost while A stopped\n{}", w.log(A));
    let log = w.log(A);
    let i_withdraw = log.find("withdrawing the anycast prefixes").expect(&log);
    let i_down = log.find("shutting down").expect(&log);
    assert!(i_withdraw < i_down, "withdraw must come before the stop");

    let tr = Instant::now();
    w.start_boltz(A);
    wait_fib(&w, "A back after restart", Duration::from_secs(10), &BOTH);
    report.push(format!(
        "   restart: announced {:.2} s after start (rise 2 × 1 s)",
        tr.elapsed().as_secs_f64()
    ));

    // 4. SIGKILL A's boltz: the guard withdraws within 2 s; count the
    //    queries lost meanwhile.
    let t4 = Instant::now();
    w.sites[A].boltz.as_mut().unwrap().kill();
    let gone = wait_fib(
        &w,
        "A withdrawn after SIGKILL",
        Duration::from_secs(10),
        &ONLY_B,
    );
    let (a, b, lost) = settle(&client, t4);
    report.push(format!(
        "4. SIGKILL: withdrawn after {:.0} ms (limit 2 s); client: a {a}, b {b}, lost {lost}",
        gone.as_secs_f64() * 1e3
    ));

    //    A hung boltz (SIGSTOP): the guard hears nothing for 1 s and
    //    withdraws; once it runs again it re-asserts.
    w.start_boltz(A);
    wait_fib(&w, "A back after restart", Duration::from_secs(10), &BOTH);
    let th = Instant::now();
    w.sites[A].boltz.as_ref().unwrap().signal(libc::SIGSTOP);
    let hung = wait_fib(
        &w,
        "A withdrawn while hung",
        Duration::from_secs(3),
        &ONLY_B,
    );
    let (a, b, lost) = settle(&client, th);
    w.sites[A].boltz.as_ref().unwrap().signal(libc::SIGCONT);
    let resumed = wait_fib(&w, "A back after SIGCONT", Duration::from_secs(5), &BOTH);
    report.push(format!(
        "   SIGSTOP: withdrawn after {:.2} s (guard_timeout 1 s); client: a {a}, b {b}, lost {lost}; SIGCONT: back after {:.2} s",
        hung.as_secs_f64(),
        resumed.as_secs_f64()
    ));

    // 5. Break A's DNS without killing it: a zone without the probe name.
    //    Withdrawn after `fall` probes; back after `rise` and the hold-down.
    let zone = w.sites[A].zones.join("example.com.toml");
    let good = std::fs::read_to_string(&zone).unwrap();
    let t5 = Instant::now();
    std::fs::write(&zone, good.replace("probe = ", "probe-gone = ")).unwrap();
    let failed = wait_fib(
        &w,
        "A withdrawn when its DNS fails the probe",
        Duration::from_secs(6),
        &ONLY_B,
    );
    let st = w.prefix_state(A);
    assert_eq!(st["state"], "withdrawn");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .starts_with("failing: udp: NXDOMAIN")
            || st["reason"]
                .as_str()
                .unwrap()
                .contains("Non-Existent Domain"),
        "{st}"
    );
    let (a, b, lost) = settle(&client, t5);
    std::fs::write(&zone, &good).unwrap();
    let t_heal = Instant::now();
    // Healthy again, but held down: the probe passes and the prefix stays
    // withdrawn, saying why.
    wait("A held down after healing", Duration::from_secs(5), || {
        let st = w.prefix_state(A);
        st["reason"] == "held-down" && st["state"] == "withdrawn"
    });
    assert!(fib_is(&w, &ONLY_B), "announced during the hold-down");
    wait_fib(
        &w,
        "A back after its DNS heals",
        Duration::from_secs(10),
        &BOTH,
    );
    let (healed, after_withdrawal) = (t_heal.elapsed(), (t5 + failed).elapsed());
    report.push(format!(
        "5. broken zone: withdrawn after {:.2} s (fall 2 × 1 s, reload ≤ 0.2 s); client: a {a}, b {b}, lost {lost}; healed: back {:.2} s after the fix, {:.2} s after the withdrawal was seen (rise 2 × 1 s, hold-down 3 s)",
        failed.as_secs_f64(),
        healed.as_secs_f64(),
        after_withdrawal.as_secs_f64()
    ));

    // 6. Restart A's BIRD: it comes up with the protocols disabled; boltz
    //    re-asserts within a second and the path comes back.
    let t6 = Instant::now();
    w.sites[A].bird.stop();
    wait_fib(
        &w,
        "A gone while its BIRD is down",
        Duration::from_secs(3),
        &ONLY_B,
    );
    w.sites[A].bird.start();
    let again = wait_fib(
        &w,
        "A back after its BIRD restarts",
        Duration::from_secs(10),
        &BOTH,
    );
    let (a, b, lost) = settle(&client, t6);
    let st = w.prefix_state(A);
    assert!(st["reasserts"].as_u64().unwrap() >= 1, "{st}");
    report.push(format!(
        "6. BIRD restart: path back {:.2} s after BIRD started (re-asserted {} time(s)); client: a {a}, b {b}, lost {lost}",
        again.as_secs_f64(),
        st["reasserts"]
    ));

    // The metrics say the same.
    let (code, metrics) = w.api(A, "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains(&format!(
        "boltz_anycast_state{{prefix=\"{ANYCAST}/32\",state=\"announced\"}} 1"
    )));
    assert!(metrics.contains(&format!(
        "boltz_anycast_reasserts_total{{prefix=\"{ANYCAST}/32\"}} 1"
    )));
    crate::exposition::check_exposition("boltz serve --anycast", &metrics);
    let (code, status) = w.api(A, "GET", "/v1/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["anycast"]["prefixes"][0]["state"], "announced",
        "{status}"
    );
    assert_eq!(status["anycast"]["speaker"], "bird");
    drop(client);
    println!("anycast through BIRD, measured:");
    for r in &report {
        println!("  {r}");
    }
}

/// At start boltz asks BIRD for the protocols the file names: a missing
/// one, or one that is not static, is refused with what BIRD has, by
/// `boltz anycast check` and by `boltz serve`.
fn refuses_what_bird_does_not_know(w: &World) {
    let good =
        std::fs::read_to_string(w.sites[A].zones.parent().unwrap().join("anycast.toml")).unwrap();
    let bad = w.lan.dir.path().join("bad-anycast.toml");
    std::fs::write(
        &bad,
        good.replace("\"boltz_ns_drain\"", "\"boltz_nx\"")
            .replace("\"boltz_ns\"", "\"upstream\""),
    )
    .unwrap();
    let out = std::process::Command::new(crate::BOLTZ)
        .args(["anycast", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("drain_protocol \"boltz_nx\" for 192.0.2.53/32 is not a protocol BIRD at"),
        "{text}"
    );
    assert!(
        text.contains("(it has: boltz_ns, boltz_ns_drain, device1, upstream)"),
        "{text}"
    );
    assert!(text.contains("protocol \"upstream\" for 192.0.2.53/32 is a BGP protocol in BIRD; boltz toggles static protocols only"), "{text}");
    let zones = w.sites[A].zones.to_str().unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.lan.ns("a"),
            crate::BOLTZ,
            "serve",
            "--no-geoip",
            "--zones",
            zones,
        ])
        .args([
            "--listen",
            "192.0.2.53:53",
            "--api",
            "127.0.0.1:5380",
            "--anycast",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is not a protocol BIRD at"), "{err}");
    let ok = std::process::Command::new(crate::BOLTZ)
        .args(["anycast", "check"])
        .arg(w.sites[A].zones.parent().unwrap().join("anycast.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}
