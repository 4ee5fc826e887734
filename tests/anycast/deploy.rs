//! The deployment example holds together: `deploy/anycast.toml` names
//! the protocols `deploy/bird/bird.conf` declares, as static protocols, in
//! a real BIRD started with that file (in a namespace of the test's own,
//! with only its loopback: its BGP session reaches nothing), and the
//! router's side parses.

use std::process::Command;

use crate::harness::missing;
use crate::netns::Lan;

#[test]
fn the_deploy_example_is_what_bird_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = format!("{root}/deploy/anycast.toml");
    let out = Command::new(crate::BOLTZ)
        .args(["anycast", "check", &example])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 prefix(es): ok"), "{text}");
    if let Some(why) = missing() {
        println!("skipped: BIRD's side of the example: {why}");
        return;
    }
    for conf in ["bird.conf", "router-side.conf"] {
        let out = Command::new("bird")
            .args(["-p", "-c", &format!("{root}/deploy/bird/{conf}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{conf}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut lan = Lan::new("bzad");
    lan.bare("s");
    let dir = lan.dir.path();
    let (sock, pid) = (dir.join("bird.ctl"), dir.join("bird.pid"));
    let out = Command::new("ip")
        .args(["netns", "exec", &lan.ns("s"), "bird", "-c"])
        .arg(format!("{root}/deploy/bird/bird.conf"))
        .arg("-s")
        .arg(&sock)
        .arg("-P")
        .arg(&pid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.join("anycast.toml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("/run/bird/bird.ctl", sock.to_str().unwrap());
    std::fs::write(&file, text).unwrap();
    let mut checked = None;
    for _ in 0..200 {
        let out = Command::new(crate::BOLTZ)
            .args(["anycast", "check"])
            .arg(&file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.contains("unchecked") {
            checked = Some((out.status.success(), text));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    if let Some(p) = std::fs::read_to_string(&pid)
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        // SAFETY: kill has no memory preconditions; the pid is this BIRD's.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let (ok, text) = checked.expect("BIRD never answered");
    assert!(ok, "{text}");
    assert!(text.contains("BIRD knows every protocol: ok"), "{text}");
}
