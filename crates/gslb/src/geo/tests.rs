//! Tests of [`GeoDb`](super::GeoDb): lookups, unknown addresses, IPv4-mapped
//! addresses, open errors, and hot reload under concurrent lookups.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

fn rec(lat: f64, lon: f64, country: &str, continent: &str) -> GeoRecord {
    GeoRecord::new(lat, lon, country, continent)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Writes like a deployment would: temp file, then rename over `path`.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn db_bytes(w: &MmdbWriter) -> Vec<u8> {
    let mut buf = Vec::new();
    w.write_to(&mut buf).unwrap();
    buf
}

fn sample() -> MmdbWriter {
    let mut w = MmdbWriter::new("sample").with_build_epoch(1_700_000_000);
    w.insert(net("192.0.2.0/24"), rec(52.52, 13.405, "DE", "EU"));
    w.insert(net("192.0.2.128/26"), rec(48.85, 2.35, "fr", ""));
    w.insert(net("2001:db8::/32"), rec(40.71, -74.0, "US", "NA"));
    w.insert(net("2001:db8:aa::/48"), rec(-33.86, 151.2, "", ""));
    w
}

fn open_sample(dir: &Path) -> GeoDb {
    let path = dir.join("geo.mmdb");
    install(&path, &db_bytes(&sample()));
    GeoDb::open(&path).unwrap()
}

#[test]
fn error_can_cross_threads_for_anyhow() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<GeoError>();
    assert_send_sync::<GeoDb>();
}

#[test]
fn lookups_return_location_codes_and_exact_network() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_sample(dir.path());
    assert_eq!(db.metadata_summary().split(',').next(), Some("GeoIP2-City"));
    assert!(db.metadata_summary().ends_with("built 1700000000"));

    let hit = db.lookup(ip("192.0.2.10"));
    assert_eq!(
        hit,
        GeoHit {
            location: Some(Location {
                lat: 52.52,
                lon: 13.405
            }),
            network: net("192.0.2.0/25"),
            country: Some(*b"DE"),
            continent: Some(*b"EU"),
        }
    );
    assert_eq!(hit.country_str(), Some("DE"));

    let hit = db.lookup(ip("192.0.2.130"));
    assert_eq!(hit.network, net("192.0.2.128/26"));
    assert_eq!(hit.location.map(|l| l.lat), Some(48.85));
    assert_eq!(hit.country_str(), Some("FR"));
    assert_eq!(hit.continent, None);

    let hit = db.lookup(ip("2001:db8:aa:1::1"));
    assert_eq!(hit.network, net("2001:db8:aa::/48"));
    assert_eq!(
        hit.location,
        Some(Location {
            lat: -33.86,
            lon: 151.2
        })
    );
    assert_eq!((hit.country, hit.continent), (None, None));

    let hit = db.lookup(ip("2001:db8:ff::1"));
    assert_eq!(hit.continent_str(), Some("NA"));
    assert!(hit.network.contains(&ip("2001:db8:ff::1")));
}

#[test]
fn unknown_addresses_get_empty_network() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_sample(dir.path());
    let inserted = ["192.0.2.0/24", "2001:db8::/32"].map(net);
    for addr in ["192.0.3.1", "10.0.0.1", "2001:db9::1", "::1"] {
        let hit = db.lookup(ip(addr));
        assert_eq!(hit.location, None, "{addr}");
        assert!(hit.network.contains(&ip(addr)), "{addr}: {}", hit.network);
        for n in &inserted {
            assert!(!hit.network.contains(n) && !n.contains(&hit.network));
        }
    }
    assert_eq!(db.lookup(ip("192.0.3.1")).network, net("192.0.3.0/24"));
}

#[test]
fn mapped_lookup_equals_ipv4_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_sample(dir.path());
    for v4 in ["192.0.2.10", "192.0.2.130", "198.51.100.1"] {
        let mapped = ip(&format!("::ffff:{v4}"));
        assert_eq!(db.lookup(mapped), db.lookup(ip(v4)));
        assert!(db.lookup(mapped).network.addr().is_ipv4());
    }
    assert_eq!(normalise_ip(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    assert_eq!(normalise_ip(ip("::1.2.3.4")), ip("::1.2.3.4"));
    assert_eq!(normalise_ip(ip("2001:db8::1")), ip("2001:db8::1"));
}

#[test]
fn tree_without_ipv4_subtree_reports_whole_ipv4_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6only.mmdb");
    let mut w = MmdbWriter::new("t").without_ipv4_subtree();
    w.insert(net("2001:db8::/32"), rec(1.0, 2.0, "", ""));
    install(&path, &db_bytes(&w));
    let db = GeoDb::open(&path).unwrap();
    let hit = db.lookup(ip("192.0.2.1"));
    assert_eq!((hit.location, hit.network), (None, net("0.0.0.0/0")));
    assert_eq!(db.lookup(ip("2001:db8::1")).network, net("2001:db8::/32"));
}

#[test]
fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mmdb");
    let err = GeoDb::open(&missing).unwrap_err().to_string();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");

    for (name, bytes) in [
        ("garbage.mmdb", b"definitely not a database".to_vec()),
        ("empty.mmdb", Vec::new()),
        ("truncated.mmdb", {
            let full = db_bytes(&sample());
            // Keep the metadata, lose most of the tree.
            let meta_at = full.len() - 300;
            [&full[..10], &full[meta_at..]].concat()
        }),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = GeoDb::open(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
    let err = GeoDb::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn reload_swaps_data_and_broken_file_keeps_old_reader() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_sample(dir.path());
    assert!(!db.reload_if_changed().unwrap());
    assert_eq!(db.lookup(ip("192.0.2.1")).country_str(), Some("DE"));

    let mut w = MmdbWriter::new("v2");
    w.insert(net("192.0.2.0/24"), rec(35.0, 139.0, "JP", "AS"));
    install(db.path(), &db_bytes(&w));
    assert!(db.reload_if_changed().unwrap());
    assert!(!db.reload_if_changed().unwrap());
    assert_eq!(db.lookup(ip("192.0.2.1")).country_str(), Some("JP"));
    assert_eq!(db.lookup(ip("2001:db8::1")).location, None);

    install(db.path(), b"broken");
    let err = db.reload().unwrap_err().to_string();
    assert!(err.contains("geo.mmdb"), "{err}");
    assert!(db.reload_if_changed().is_err());
    assert_eq!(db.lookup(ip("192.0.2.1")).country_str(), Some("JP"));

    fs::remove_file(db.path()).unwrap();
    assert!(db.reload_if_changed().is_err());
    assert_eq!(db.lookup(ip("192.0.2.1")).country_str(), Some("JP"));
}

#[test]
fn lookups_during_reloads_see_one_version_or_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    let versions: Vec<Vec<u8>> = [("DE", 1.0), ("JP", 2.0)]
        .iter()
        .map(|&(cc, lat)| {
            let mut w = MmdbWriter::new(cc);
            for i in 0..2000u32 {
                let n = IpNet::new(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), 24);
                w.insert(n.unwrap(), rec(lat, lat, cc, ""));
            }
            db_bytes(&w)
        })
        .collect();
    install(&path, &versions[0]);
    let db = GeoDb::open(&path).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..3u32 {
            let (db, stop) = (&db, &stop);
            s.spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let addr =
                        IpAddr::from((0x0a00_0000 + (((n * 7 + t) % 2000) << 8)).to_be_bytes());
                    let hit = db.lookup(addr);
                    let lat = hit.location.map(|l| l.lat);
                    let expected = match hit.country_str() {
                        Some("DE") => Some(1.0),
                        Some("JP") => Some(2.0),
                        other => panic!("torn lookup: {other:?}"),
                    };
                    assert_eq!(lat, expected);
                    n = n.wrapping_add(1);
                }
            });
        }
        for round in 0..40 {
            install(&path, &versions[round % 2]);
            db.reload().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
}
