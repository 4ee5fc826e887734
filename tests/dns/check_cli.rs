//! `boltz check`: every problem of a broken zone is printed as
//! `file:line:col: message` and the exit status is non-zero; `serve` refuses
//! to start on the same errors; the bundled example zone is clean.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

fn check(text: &str) -> (bool, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BOLTZ)
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        dir,
    )
}

/// Asserts a diagnostic `bad.toml:LINE:COL: ...needle...` exists.
fn has(out: &str, line: usize, needle: &str) {
    let found = out
        .lines()
        .any(|l| l.contains(&format!("bad.toml:{line}:")) && l.contains(needle));
    assert!(found, "expected `{needle}` at line {line} in:\n{out}");
}

#[test]
fn example_zone_is_clean() {
    boltz_ok(
        ["check", "zones", "--geoip", "geoip/demo.mmdb"],
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
    );
}

#[test]
fn semantic_errors_name_file_line_and_column() {
    let zone = r#"origin = "example.com."
ttl = -5
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com.", serial = 1 }
ns = ["ns1.example.com."]

[datacenters.fra]
location = [95.0, 8.68]
weight = 0
ipv4 = ["192.0.2.300"]

[datacenters.iad]
location = [38.95, -200.0]
ipv4 = ["198.51.100.10"]

[records]
www = { type = "steered", datacenters = ["fra", "mars"] }
alias = [{ type = "CNAME", value = "www" }, { type = "A", values = ["192.0.2.1"] }]
WWW2 = { type = "A", values = ["192.0.2.2"] }
"www2.example.com." = { type = "A", values = ["192.0.2.3"] }
txt = { type = "TXT", values = ["x"], ttl = 9999999999 }
odd = { type = "BOGUS", values = ["x"] }
"#;
    let (ok, out, _d) = check(zone);
    assert!(!ok);
    has(&out, 2, "ttl -5 is out of range");
    has(&out, 7, "latitude 95 is out of range");
    has(&out, 8, "weight must be > 0");
    has(&out, 9, "not an IPv4 address");
    has(&out, 12, "longitude -200 is out of range");
    has(&out, 16, "unknown datacenter `mars`");
    has(&out, 17, "cannot coexist with other data");
    has(&out, 19, "duplicate A records");
    has(&out, 20, "out of range");
    has(&out, 21, "unknown record type `BOGUS`");
    // Every line is file:line:col: message.
    for l in out.lines() {
        let parts: Vec<&str> = l.splitn(4, ':').collect();
        assert_eq!(parts.len(), 4, "{l}");
        assert!(
            parts[1].parse::<usize>().is_ok() && parts[2].parse::<usize>().is_ok(),
            "{l}"
        );
    }
}

#[test]
fn syntax_and_unknown_fields_have_positions() {
    let (ok, out, _d) = check("origin = \"example.com.\"\nttl = 300\nsoa = { mname = \"a.\", rname = \"b.\", serial = 1 }\nns = [\"a.\"]\n[datacenters.fra]\nlocation = [1.0, 2.0]\nipv4 = [\"192.0.2.1\"]\nwieght = 2\n");
    assert!(!ok);
    has(&out, 8, "unknown field `wieght`");
    let (ok, out, _d) = check("origin = \"example.com.\"\nttl = \n");
    assert!(!ok);
    assert!(out.contains("bad.toml:2:"), "{out}");
    let (ok, out, _d) = check("origin = \"example.com\"\nttl = 300\nsoa = { mname = \"a.\", rname = \"b.\", serial = 1 }\nns = [\"a.\"]\n");
    assert!(!ok);
    has(&out, 1, "must be absolute");
}

#[test]
fn serve_refuses_to_start_on_errors() {
    let fx = Fixture::new(&zone_toml(
        "",
        &[],
        "bad = { type = \"steered\", datacenters = [\"nope\"] }",
    ));
    let out = fx.serve_command().output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("example.com.toml:") && err.contains("unknown datacenter `nope`"),
        "{err}"
    );
}

/// A reader that goes away (`boltz explain … | head -3`) ends every
/// printing subcommand quietly and successfully, as ripgrep does: no panic,
/// nothing on stderr. The read end is closed before the command writes, so
/// its first write meets a closed pipe every time.
#[test]
fn a_closed_stdout_ends_printing_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mmdb = dir.path().join("out.mmdb");
    let commands: [&[&str]; 5] = [
        &["explain", "www.example.com", "--client", "1.0.16.1"],
        &[
            "explain",
            "www.example.com",
            "--client",
            "1.0.16.1",
            "--json",
        ],
        &["check", "zones", "--geoip", "geoip/demo.mmdb"],
        &[
            "geoip",
            "build",
            "geoip/demo.csv",
            "-o",
            mmdb.to_str().unwrap(),
        ],
        &["l7", "--check", "--config", "deploy/l7.example.toml"],
    ];
    for args in commands {
        let mut child = Command::new(BOLTZ)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "boltz {}: {:?}\n{stderr}",
            args.join(" "),
            out.status
        );
    }
}

/// `datacenters.toml` beside the zones is checked with them: two zones
/// naming its DCs pass; a bad value in it fails the check at its own
/// `file:line:col`.
#[test]
fn check_validates_the_shared_datacenters_file() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("datacenters.toml");
    let dcs = "[datacenters.fra]\nlocation = [50.11, 8.68]\nipv4 = [\"192.0.2.10\"]\n\n\
               [datacenters.iad]\nlocation = [38.95, -77.45]\nipv4 = [\"198.51.100.10\"]\n";
    std::fs::write(&shared, dcs).unwrap();
    for origin in ["example.com.", "example.net."] {
        let zone = format!(
            "origin = \"{origin}\"\nsoa = {{ mname = \"ns1.{origin}\", rname = \"h.{origin}\", serial = 1 }}\n\
             ns = [\"ns1.{origin}\"]\n[records]\nwww = {{ type = \"steered\", datacenters = [\"fra\", \"iad\"] }}\n"
        );
        std::fs::write(dir.path().join(format!("{origin}toml")), zone).unwrap();
    }
    let out = boltz_ok([Path::new("check"), dir.path()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 zone(s)") && stdout.contains(": ok"),
        "{stdout}"
    );

    std::fs::write(&shared, dcs.replace("[38.95,", "[95.0,")).unwrap();
    let out = Command::new(BOLTZ)
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:6:12: datacenters.iad.location: latitude 95 is out of range",
            shared.display()
        )),
        "{stdout}"
    );
}

/// The example site configuration in `deploy/site/` stays valid.
#[test]
fn the_deploy_example_site_checks() {
    let zones = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/site/zones");
    let out = boltz_ok(["check", zones], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 datacenters (2 with an inside): ok"),
        "{text}"
    );
}

/// A site's feed polled less than twice per report is refused: a node that
/// misses a report would take other EWMA steps, and its prices would part
/// from the other nodes'.
#[test]
fn a_report_polled_too_slowly_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/site/zones");
    for f in ["datacenters.toml", "example.com.toml"] {
        let text = std::fs::read_to_string(Path::new(src).join(f)).unwrap();
        let text = text.replace(
            "interval = \"2s\", stale_after",
            "interval = \"3s\", stale_after",
        );
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    let out = Command::new(BOLTZ)
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "datacenters.fra: load.interval (3s) must be at most half of dataplane.interval (5s)"
        ),
        "{text}"
    );
}
