//! `boltz check`: the same loading `serve` does (zones, and every
//! datacenter's inside in `datacenters.toml`), reported for humans and CI.

use std::path::Path;
use std::process::ExitCode;

use boltz_gslb::GeoDb;

use super::node;

pub fn run(path: &Path, geoip: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    match node::load(path, None) {
        Ok(loaded) => {
            let set = &loaded.zones;
            let names: usize = set.zones.iter().map(|z| z.nodes.len()).sum();
            let dcs: usize = set.zones.iter().map(|z| z.datacenters.len()).sum();
            outln!(
                "{}: {} zone(s), {names} names, {dcs} datacenters ({} with an inside): ok",
                path.display(),
                set.zones.len(),
                loaded.insides
            );
        }
        Err(diags) => {
            for d in &diags.0 {
                outln!("{d}");
            }
            eprintln!("{} error(s)", diags.0.len());
            ok = false;
        }
    }
    if let Some(g) = geoip {
        match GeoDb::open(g) {
            Ok(db) => outln!("{}: {}: ok", g.display(), db.metadata_summary()),
            Err(e) => {
                outln!("{e}");
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
