//! The committed demo database is what `boltz geoip build` makes of the
//! committed CSV: every network of `geoip/demo.csv` looks up to its row in
//! `geoip/demo.mmdb`, with the row's exact prefix as the cell.

use std::path::Path;

use boltz_gslb::GeoDb;

#[test]
fn demo_mmdb_matches_demo_csv() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = GeoDb::open(&root.join("geoip/demo.mmdb")).unwrap();
    let csv = std::fs::read_to_string(root.join("geoip/demo.csv")).unwrap();
    let mut rows = 0;
    for line in csv.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("network,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let net: ipnet::IpNet = f[0].parse().unwrap();
        let (lat, lon): (f64, f64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let hit = db.lookup(net.network());
        let loc = hit.location.unwrap_or_else(|| {
            panic!(
                "{net} missing: rebuild with `boltz geoip build geoip/demo.csv -o geoip/demo.mmdb`"
            )
        });
        assert!(
            (loc.lat - lat).abs() < 1e-6 && (loc.lon - lon).abs() < 1e-6,
            "{net}: stale demo.mmdb"
        );
        assert_eq!(hit.network, net, "cell of {net}");
        assert_eq!(hit.country_str(), Some(f[3]));
        rows += 1;
    }
    assert!(rows >= 20);
}
