//! Tests of loading with a shared `datacenters.toml`: zones naming shared
//! DCs and their own, every rule of the file reported at its
//! `file:line:col`, and which files count as zones.

use super::*;
use hickory_proto::rr::{LowerName, Name};

/// `datacenters.toml` declaring sin (line 1), fra (line 5), iad (line 9):
/// file order differs from name order on purpose.
const SHARED: &str = r#"[datacenters.sin]
location = [1.35, 103.82]
ipv4 = ["203.0.113.10"]

[datacenters.fra]
location = [50.11, 8.68]
ipv4 = ["192.0.2.10"]

[datacenters.iad]
location = [38.95, -77.45]
ipv4 = ["198.51.100.10"]
"#;

/// A zone for `origin` with extra text after the header (its own DC
/// tables) and a `[records]` table; the header is 4 lines.
fn zone(origin: &str, dcs: &str, records: &str) -> String {
    format!(
        r#"origin = "{origin}"
soa = {{ mname = "ns1.{origin}", rname = "hostmaster.{origin}", serial = 1 }}
ns = ["ns1.{origin}"]

{dcs}
[records]
{records}
"#
    )
}

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

/// Every problem of loading `d`, as `file-name:line:col: message` with the
/// temp directory left out of paths.
fn problems(d: &tempfile::TempDir) -> Vec<String> {
    let diags = ZoneSet::load(d.path()).expect_err("should not load");
    let root = format!("{}/", d.path().display());
    diags
        .0
        .iter()
        .map(|diag| diag.to_string().replace(&root, ""))
        .collect()
}

/// The DC names a zone's steered `owner` resolves to, in order.
fn steered_names(zone: &Zone, owner: &str) -> Vec<String> {
    let name = LowerName::new(&Name::from_ascii(owner).unwrap());
    let steered = zone.nodes[&name].steered.as_ref().unwrap();
    steered
        .datacenters
        .iter()
        .map(|&i| zone.datacenters[i].name.clone())
        .collect()
}

fn dc_names(zone: &Zone) -> Vec<&str> {
    zone.datacenters.iter().map(|d| d.name.as_str()).collect()
}

const LAB: &str = "[datacenters.lab]\nlocation = [0.0, 0.0]\nipv4 = [\"192.0.2.99\"]\n";

#[test]
fn a_shared_dc_serves_two_zones_beside_their_own() {
    let d = dir(&[
        ("datacenters.toml", SHARED),
        (
            "a.toml",
            &zone(
                "example.com.",
                "",
                r#"www = { type = "steered", datacenters = ["fra", "sin"] }"#,
            ),
        ),
        (
            "b.toml",
            &zone(
                "example.net.",
                LAB,
                r#"www = { type = "steered", datacenters = ["iad", "lab"] }
api = { type = "steered", datacenters = ["fra"] }"#,
            ),
        ),
    ]);
    let set = ZoneSet::load(d.path()).unwrap();
    let (a, b) = (&set.zones[0], &set.zones[1]);
    // Own DCs first, then the referenced shared ones in the file's order.
    assert_eq!(dc_names(a), ["sin", "fra"]);
    assert_eq!(steered_names(a, "www.example.com."), ["fra", "sin"]);
    assert_eq!(dc_names(b), ["lab", "fra", "iad"]);
    assert_eq!(steered_names(b, "www.example.net."), ["iad", "lab"]);
    assert_eq!(steered_names(b, "api.example.net."), ["fra"]);
    // The shared DC is compiled as a zone's own would be.
    let fra = &a.datacenters[a.datacenter_index("fra").unwrap()];
    let own = ZoneSet::parse_one(
        Path::new("own.toml"),
        &zone(
            "example.org.",
            &SHARED[SHARED.find("[datacenters.fra]").unwrap()
                ..SHARED.find("[datacenters.iad]").unwrap()],
            r#"www = { type = "steered", datacenters = ["fra"] }"#,
        ),
    )
    .unwrap();
    assert_eq!(fra, &own.datacenters[0]);
}

#[test]
fn zones_without_a_shared_file_keep_their_own_dcs() {
    let text = zone(
        "example.com.",
        LAB,
        r#"www = { type = "steered", datacenters = ["lab"] }"#,
    );
    let d = dir(&[("a.toml", &text)]);
    assert_eq!(datacenters_file(d.path()), None);
    let set = ZoneSet::load(d.path()).unwrap();
    assert_eq!(dc_names(&set.zones[0]), ["lab"]);
    let one = ZoneSet::parse_one(Path::new("a.toml"), &text).unwrap();
    assert_eq!(dc_names(&one), ["lab"]);
}

#[test]
fn a_dc_declared_in_a_zone_and_the_shared_file_names_both_places() {
    let fra = "[datacenters.fra]\nlocation = [50.11, 8.68]\nipv4 = [\"192.0.2.10\"]\n";
    let d = dir(&[
        ("datacenters.toml", SHARED),
        (
            "a.toml",
            &zone(
                "example.com.",
                fra,
                r#"www = { type = "steered", datacenters = ["fra"] }"#,
            ),
        ),
    ]);
    assert_eq!(
        problems(&d),
        ["a.toml:5:14: datacenters.fra is also declared in datacenters.toml:5:14; declare it once (remove it here)"]
    );
}

#[test]
fn an_unknown_dc_says_where_it_was_looked_for() {
    let records = r#"www = { type = "steered", datacenters = ["fra", "mars"] }"#;
    let d = dir(&[
        ("datacenters.toml", SHARED),
        ("a.toml", &zone("example.com.", "", records)),
    ]);
    assert_eq!(
        problems(&d),
        ["a.toml:7:7: `www`: unknown datacenter `mars` (declared neither in this zone nor in datacenters.toml)"]
    );
    // Without the shared file the message is today's, for both names.
    let d = dir(&[("a.toml", &zone("example.com.", "", records))]);
    assert_eq!(
        problems(&d),
        [
            "a.toml:7:7: `www`: unknown datacenter `fra`",
            "a.toml:7:7: `www`: unknown datacenter `mars`",
        ]
    );
}

#[test]
fn a_dcs_inside_is_refused_in_a_zone_file() {
    let dcs = format!(
        "{LAB}l7 = {{ listen = \"0.0.0.0:80\" }}\n\n[datacenters.lab.dataplane]\nkind = \"xdp\"\n"
    );
    let d = dir(&[(
        "a.toml",
        &zone(
            "example.com.",
            &dcs,
            r#"www = { type = "steered", datacenters = ["lab"] }"#,
        ),
    )]);
    let p = problems(&d);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("a.toml:8:6: datacenters.lab.l7: a datacenter's inside (l4, l7, dataplane) is declared in datacenters.toml"), "{p:?}");
    assert!(
        p[1].starts_with("a.toml:10:")
            && p[1].contains("datacenters.lab.dataplane: a datacenter's inside"),
        "{p:?}"
    );
}

#[test]
fn problems_in_the_shared_file_are_reported_at_its_positions() {
    let shared =
        format!("{SHARED}\n[datacenters.ams]\nlocation = [95.0, 4.9]\nipv4 = [\"192.0.2.300\"]\n");
    let d = dir(&[
        ("datacenters.toml", &shared),
        (
            "a.toml",
            &zone(
                "example.com.",
                "",
                r#"www = { type = "steered", datacenters = ["fra"] }"#,
            ),
        ),
    ]);
    // ams is named by no zone and still checked, once.
    assert_eq!(
        problems(&d),
        [
            "datacenters.toml:14:12: datacenters.ams.location: latitude 95 is out of range -90..=90",
            "datacenters.toml:15:9: datacenters.ams.ipv4: `192.0.2.300` is not an IPv4 address",
        ]
    );
}

#[test]
fn the_shared_file_holds_only_datacenters() {
    let d = dir(&[
        (
            "datacenters.toml",
            &format!("{SHARED}\n[sites.x]\nfoo = 1\n"),
        ),
        ("a.toml", &zone("example.com.", LAB, "")),
    ]);
    let p = problems(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("datacenters.toml:13:2:") && p[0].contains("unknown field `sites`"),
        "{p:?}"
    );
    // A broken shared file is its own error, not one per name a zone uses.
    let d = dir(&[
        ("datacenters.toml", "[datacenters.fra\n"),
        (
            "a.toml",
            &zone(
                "example.com.",
                "",
                r#"www = { type = "steered", datacenters = ["fra"] }"#,
            ),
        ),
    ]);
    let p = problems(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("datacenters.toml:1:"), "{p:?}");
}

#[test]
fn the_shared_file_accepts_a_dcs_inside_uninterpreted() {
    let shared = format!(
        "{SHARED}l4 = {{ vip = \"192.0.2.1\" }}\nl7 = {{ pools = [1, 2] }}\n\n[datacenters.iad.dataplane]\nanything = \"goes\"\n"
    );
    let d = dir(&[
        ("datacenters.toml", &shared),
        (
            "a.toml",
            &zone(
                "example.com.",
                "",
                r#"www = { type = "steered", datacenters = ["iad"] }"#,
            ),
        ),
    ]);
    let set = ZoneSet::load(d.path()).unwrap();
    assert_eq!(dc_names(&set.zones[0]), ["iad"]);
}

#[test]
fn the_shared_file_is_never_a_zone() {
    let d = dir(&[("datacenters.toml", SHARED)]);
    let p = problems(&d);
    assert!(
        p.len() == 1 && p[0].ends_with(":1:1: no *.toml zone files in this directory"),
        "{p:?}"
    );
    assert!(zone_files(&d.path().join("datacenters.toml")).is_err());
    // Beside a zone file given alone, it is found and used.
    let zone_file = d.path().join("a.toml");
    std::fs::write(
        &zone_file,
        zone(
            "example.com.",
            "",
            r#"www = { type = "steered", datacenters = ["sin"] }"#,
        ),
    )
    .unwrap();
    assert_eq!(
        datacenters_file(&zone_file),
        Some(d.path().join("datacenters.toml"))
    );
    assert_eq!(datacenters_file(d.path()), datacenters_file(&zone_file));
    assert_eq!(zone_files(d.path()).unwrap(), [zone_file.as_path()]);
    let set = ZoneSet::load(&zone_file).unwrap();
    assert_eq!(dc_names(&set.zones[0]), ["sin"]);
}
