//! What the query-path benches share: a `Handler` on the repo's `zones/`
//! with a geo database built from `geoip/demo.csv`, as `boltz serve` runs
//! it minus the socket. The directory holding the database lives as long
//! as the returned guard.

use std::path::Path;
use std::sync::Arc;

use boltz_gslb::{build_from_csv, Control, GeoDb, Handler, Metrics, ZoneSet};

/// The handler, and the directory its geo database is in.
pub fn demo_handler() -> (Handler, tempfile::TempDir) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mmdb = dir.path().join("demo.mmdb");
    build_from_csv(&root.join("geoip/demo.csv"), &mmdb).unwrap();
    let geo = Arc::new(GeoDb::open(&mmdb).unwrap());
    let control = Control::new(ZoneSet::load(&root.join("zones")).unwrap(), false).unwrap();
    let h = Handler::new(control, Some(geo), Arc::new(Metrics::default()));
    (h, dir)
}
