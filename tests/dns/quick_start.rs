//! The README's quick start, verbatim in spirit: the bundled example zone and
//! demo database, queried with `dig +subnet`, give a European answer for a
//! London subnet and an American one for a US subnet. Needs `dig` (the test
//! command installs dnsutils); elsewhere it says why it is skipped.

use std::process::{Command, Stdio};

use crate::harness::*;

fn dig(server: std::net::SocketAddr, args: &[&str]) -> Option<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn dig_subnet_gives_european_and_american_answers() {
    if Command::new("dig")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIPPED: `dig` is not installed (apt-get install dnsutils; .ci/run installs it)"
        );
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(BOLTZ)
        .current_dir(root)
        .args(["serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let dns: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|p| p.strip_prefix("dns="))
        .unwrap()
        .parse()
        .unwrap();

    let eu = dig(dns, &["www.example.com", "+subnet=81.2.69.0/24", "+short"]).unwrap();
    let us = dig(
        dns,
        &["www.example.com", "+subnet=216.160.83.0/24", "+short"],
    )
    .unwrap();
    let full = dig(dns, &["www.example.com", "+subnet=81.2.69.0/24"]).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(eu.trim(), "192.0.2.10", "London → fra");
    assert_eq!(us.trim(), "198.51.100.20", "Milton, WA → sjc");
    assert!(
        full.contains("flags: qr aa rd;"),
        "authoritative, no recursion: {full}"
    );
    assert!(
        full.contains("CLIENT-SUBNET: 81.2.69.0/24/24"),
        "ECS echoed with scope: {full}"
    );
}
