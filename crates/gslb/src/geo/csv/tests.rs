//! Tests of building a geo database from CSV: every error class with its
//! file and line, duplicates, atomic replacement under an open reader.

use super::*;
use crate::geo::GeoDb;
use std::net::IpAddr;
use std::time::Instant;

fn setup(content: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("geo.csv");
    fs::write(&input, content).unwrap();
    let output = dir.path().join("geo.mmdb");
    (dir, input, output)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn builds_valid_database_from_csv() {
    let (dir, input, output) = setup(
        "network,latitude,longitude,country,continent\r\n\
         # Europe\n\
         \n\
         192.0.2.0/24, 52.52, 13.405, de, EU\r\n\
         198.51.100.0/24,52.52,13.405,DE,EU\n\
         2001:db8::/32,40.71,-74.0,,\n\
         203.0.113.0/25,-33.86,151.2\n\
         \n",
    );
    let stats = build_from_csv(&input, &output).unwrap();
    assert_eq!(
        stats,
        BuildStats {
            networks: 4,
            records: 3
        }
    );
    assert_eq!(files_in(dir.path()), ["geo.csv", "geo.mmdb"]);

    let db = GeoDb::open(&output).unwrap();
    let hit = db.lookup("192.0.2.1".parse().unwrap());
    assert_eq!(hit.country_str(), Some("DE"));
    assert_eq!(hit.continent_str(), Some("EU"));
    assert_eq!(hit.network.to_string(), "192.0.2.0/24");
    let hit = db.lookup("2001:db8::1".parse().unwrap());
    assert_eq!(hit.location.map(|l| (l.lat, l.lon)), Some((40.71, -74.0)));
    assert_eq!(hit.country, None);
    let hit = db.lookup("203.0.113.1".parse().unwrap());
    assert_eq!(hit.location.map(|l| l.lon), Some(151.2));
}

#[test]
fn every_error_class_reports_file_and_line() {
    let cases = [
        ("10.0.0.0/8,1,2,DE,EU,extra", "expected 5 fields"),
        ("10.0.0.0/8,1", "expected 5 fields"),
        ("10.0.0.0,1,2,DE,EU", "invalid network"),
        ("banana/8,1,2,DE,EU", "invalid network"),
        ("10.0.0.1/8,1,2,DE,EU", "host bits set"),
        ("2001:db8::1/32,1,2,DE,EU", "host bits set"),
        ("10.0.0.0/8,north,2,DE,EU", "invalid latitude"),
        ("10.0.0.0/8,90.5,2,DE,EU", "latitude 90.5 out of range"),
        ("10.0.0.0/8,NaN,2,DE,EU", "latitude NaN out of range"),
        ("10.0.0.0/8,1,-180.1,DE,EU", "longitude -180.1 out of range"),
        ("10.0.0.0/8,1,inf,DE,EU", "longitude inf out of range"),
        ("10.0.0.0/8,1,2,DEU,EU", "invalid country code"),
        ("10.0.0.0/8,1,2,D1,EU", "invalid country code"),
        ("10.0.0.0/8,1,2,DE,Europe", "invalid continent code"),
        ("network,1,2,DE,EU", "invalid network"),
    ];
    for (bad, expected) in cases {
        // Bad line on line 4, after a header, a comment and a good line.
        let (dir, input, output) = setup(&format!(
            "network,latitude,longitude,country,continent\n# c\n192.0.2.0/24,1,2,,\n{bad}\n"
        ));
        let err = build_from_csv(&input, &output).unwrap_err();
        let msg = err.to_string();
        let prefix = format!("{}:4: ", input.display());
        assert!(msg.starts_with(&prefix), "{bad:?}: {msg}");
        assert!(msg.contains(expected), "{bad:?}: {msg}");
        assert!(matches!(err, GeoError::Csv { line: 4, .. }));
        // A failed build must not leave an output or temp file behind.
        assert_eq!(files_in(dir.path()), ["geo.csv"], "{bad:?}");
    }
}

#[test]
fn duplicates_are_rejected_including_mapped_spelling() {
    for dup in ["192.0.2.0/24", "::ffff:192.0.2.0/120"] {
        let (_dir, input, output) = setup(&format!(
            "192.0.2.0/24,1,2,,\n10.0.0.0/8,1,2,,\n{dup},3,4,,\n"
        ));
        let msg = build_from_csv(&input, &output).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{}:3: duplicate network", input.display())));
        assert!(msg.contains("first defined on line 1"), "{msg}");
    }
}

#[test]
fn invalid_utf8_and_missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bin.csv");
    fs::write(&input, b"192.0.2.0/24,1,2,,\n\xff\xfe,1,2,,\n").unwrap();
    let msg = build_from_csv(&input, &dir.path().join("o.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with(&format!("{}:2: not valid UTF-8", input.display())));

    let missing = dir.path().join("missing.csv");
    let msg = build_from_csv(&missing, &dir.path().join("o.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!("{}: open:", missing.display())),
        "{msg}"
    );
}

#[test]
fn header_only_counts_as_first_line() {
    let (_dir, input, output) = setup("192.0.2.0/24,1,2,,\nnetwork,latitude\n");
    let msg = build_from_csv(&input, &output).unwrap_err().to_string();
    assert!(msg.contains(":2: "), "{msg}");
}

#[test]
fn rebuild_replaces_output_seen_by_open_reader() {
    let (dir, input, output) = setup("192.0.2.0/24,1,2,DE,EU\n");
    build_from_csv(&input, &output).unwrap();
    let db = GeoDb::open(&output).unwrap();
    fs::write(&input, "192.0.2.0/24,3,4,JP,AS\n").unwrap();
    build_from_csv(&input, &output).unwrap();
    assert_eq!(files_in(dir.path()), ["geo.csv", "geo.mmdb"]);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    // The old mapping is untouched until the reload picks up the new file.
    assert_eq!(db.lookup(ip).country_str(), Some("DE"));
    assert!(db.reload_if_changed().unwrap());
    assert_eq!(db.lookup(ip).country_str(), Some("JP"));
}

#[test]
fn output_in_missing_directory_is_an_error_naming_it() {
    let (dir, input, _) = setup("192.0.2.0/24,1,2,,\n");
    let output = dir.path().join("nope").join("geo.mmdb");
    let msg = build_from_csv(&input, &output).unwrap_err().to_string();
    assert!(msg.starts_with(&output.display().to_string()), "{msg}");
}

#[test]
fn build_200k_networks() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.csv");
    let mut csv = String::with_capacity(200_000 * 40);
    csv.push_str("network,latitude,longitude,country,continent\n");
    for i in 0..200_000u32 {
        let a = 0x0100_0000 + (i << 8);
        let [b0, b1, b2, _] = a.to_be_bytes();
        let lat = f64::from(i % 1800) / 10.0 - 90.0;
        csv.push_str(&format!(
            "{b0}.{b1}.{b2}.0/24,{lat},{},DE,EU\n",
            i64::from(i % 360) - 180
        ));
    }
    fs::write(&input, csv).unwrap();
    let output = dir.path().join("big.mmdb");
    let start = Instant::now();
    let stats = build_from_csv(&input, &output).unwrap();
    let elapsed = start.elapsed();
    let size = fs::metadata(&output).unwrap().len();
    println!("build_from_csv 200k networks: {stats:?}, {size} bytes, {elapsed:?}");
    assert_eq!(stats.networks, 200_000);
    let db = GeoDb::open(&output).unwrap();
    let hit = db.lookup("1.2.3.4".parse().unwrap());
    assert_eq!(hit.network.to_string(), "1.2.3.0/24");
    assert!(hit.location.is_some());
}
