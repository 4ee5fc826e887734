//! [`ZoneSet`]: every zone the server is authoritative for, loaded from a
//! file or a directory all or nothing (with the `datacenters.toml` beside
//! them), with the lookups by name and by origin and the fast path's wire
//! index built alongside.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};

use super::compile::{self, DATACENTERS_FILE};
use super::{wire, Diagnostic, Diagnostics, Zone};

/// Every zone the server is authoritative for.
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    /// The zones, in load order.
    pub zones: Vec<Arc<Zone>>,
    by_origin: HashMap<LowerName, usize>,
    /// The fast path's wire index of these zones, built with them (once
    /// per load, off the query path).
    pub index: wire::FastIndex,
}

impl ZoneSet {
    /// Indexes `zones` (by origin, and the fast path's wire index).
    pub fn new(zones: Vec<Zone>) -> Self {
        let zones: Vec<Arc<Zone>> = zones.into_iter().map(Arc::new).collect();
        let by_origin = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.origin.clone(), i))
            .collect();
        let mut set = Self {
            zones,
            by_origin,
            index: wire::FastIndex::default(),
        };
        set.index = wire::FastIndex::build(&set);
        set
    }

    /// The zone with the longest origin that contains `name`.
    pub fn find(&self, name: &LowerName) -> Option<(usize, &Arc<Zone>)> {
        let mut n = name.clone();
        loop {
            if let Some(&i) = self.by_origin.get(&n) {
                return Some((i, &self.zones[i]));
            }
            if n.is_root() {
                return None;
            }
            n = n.base_name();
        }
    }

    /// The zone whose origin is `origin` (with or without the final dot).
    pub fn by_origin(&self, origin: &str) -> Option<&Arc<Zone>> {
        let name = Name::from_ascii(origin).ok()?;
        let mut name = LowerName::new(&name);
        if !name.is_fqdn() {
            name = LowerName::new(&Name::from(name).append_domain(&Name::root()).ok()?);
        }
        self.by_origin.get(&name).map(|&i| &self.zones[i])
    }

    /// Loads a zone file or every `*.toml` in a directory (sorted by name),
    /// with the shared [`datacenters_file`] when there is one: read and
    /// checked once, every problem in it reported with the zones'.
    pub fn load(path: &Path) -> Result<ZoneSet, Diagnostics> {
        let files = zone_files(path).map_err(|message| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message,
            }])
        })?;
        let mut diags = Vec::new();
        let shared = datacenters_file(path).map(|file| match read(&file) {
            Ok(text) => {
                let (shared, mut d) = compile::shared(&file, &text);
                diags.append(&mut d);
                shared
            }
            Err(d) => {
                diags.push(d);
                compile::SharedDcs::unreadable(&file)
            }
        });
        let mut zones: Vec<Zone> = Vec::new();
        for file in files {
            let text = match read(&file) {
                Ok(t) => t,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            match compile::compile(&file, &text, shared.as_ref()) {
                Ok(zone) => {
                    if let Some(other) = zones.iter().find(|z| z.origin == zone.origin) {
                        diags.push(Diagnostic {
                            file: file.clone(),
                            line: 1,
                            col: 1,
                            message: format!(
                                "zone {} is already defined in {}",
                                zone.origin,
                                other.file.display()
                            ),
                        });
                    } else {
                        zones.push(zone);
                    }
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        Ok(ZoneSet::new(zones))
    }

    /// Parses one zone from text (tests and tools), without shared DCs.
    pub fn parse_one(file: &Path, text: &str) -> Result<Zone, Diagnostics> {
        compile::compile(file, text, None).map_err(Diagnostics)
    }
}

/// The text of `file`, or why it cannot be read.
fn read(file: &Path) -> Result<String, Diagnostic> {
    std::fs::read_to_string(file).map_err(|e| Diagnostic {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        message: format!("cannot read: {e}"),
    })
}

/// The zone files under `path`: the file itself, or the sorted `*.toml`
/// files of a directory (never the shared `datacenters.toml`).
pub fn zone_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        if is_datacenters_file(path) {
            return Err(format!(
                "{DATACENTERS_FILE} declares datacenters, not a zone: give the zone file or the directory"
            ));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml") && !is_datacenters_file(p) && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no *.toml zone files in this directory".into());
    }
    Ok(files)
}

/// The shared datacenter declarations for the zones at `zones_path` (a
/// directory, or a zone file): `datacenters.toml` in that directory or
/// beside that file, when it exists.
pub fn datacenters_file(zones_path: &Path) -> Option<PathBuf> {
    let dir = if zones_path.is_dir() {
        zones_path
    } else {
        zones_path.parent()?
    };
    let file = dir.join(DATACENTERS_FILE);
    file.is_file().then_some(file)
}

fn is_datacenters_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == DATACENTERS_FILE)
}

#[cfg(test)]
mod tests;
