//! What a DNS node loads, together and all or nothing: the zones and, from
//! `datacenters.toml`, the datacenters' insides (every one for `boltz
//! check`, the node's own for `boltz serve --datacenter`). A reload that
//! fails anywhere changes neither the DNS nor the data plane.

use std::path::Path;

use boltz_core::diag::{Diagnostic, Diagnostics};
use boltz_gslb::{datacenters_file, ZoneSet};
use boltz_site::Site;

/// A node's configuration, checked.
pub struct Loaded {
    /// The zones.
    pub zones: ZoneSet,
    /// With `--datacenter`: that DC's inside.
    pub site: Option<Site>,
    /// How many DCs declare an inside.
    pub insides: usize,
}

/// Loads the zones at `zones` and the insides of `datacenters.toml` beside
/// them; with `datacenter`, that DC must have one.
pub fn load(zones: &Path, datacenter: Option<&str>) -> Result<Loaded, Diagnostics> {
    let set = ZoneSet::load(zones);
    let file = datacenters_file(zones);
    let sites = match &file {
        Some(f) => boltz_site::check_file(f).map(Some),
        None => Ok(None),
    };
    let (set, sites) = match (set, sites) {
        (Ok(z), Ok(s)) => (z, s),
        (z, s) => {
            let mut all = Vec::new();
            if let Err(d) = z {
                all.extend(d.0);
            }
            if let Err(d) = s {
                all.extend(d.0);
            }
            return Err(Diagnostics(all));
        }
    };
    if let Some(f) = &file {
        every_report_seen(&set, f, sites.iter().flatten())?;
    }
    let insides = sites
        .iter()
        .flatten()
        .filter(|s| s.l4.is_some() || s.l7.is_some())
        .count();
    let site = match datacenter {
        None => None,
        Some(dc) => Some(match &file {
            Some(f) => {
                let site = boltz_site::load(f, dc)?;
                fed(&set, f, dc)?;
                site
            }
            None => {
                return Err(Diagnostics(vec![Diagnostic {
                    file: zones.to_path_buf(),
                    line: 1,
                    col: 1,
                    message: format!(
                        "--datacenter {dc}: there is no datacenters.toml here to declare its inside"
                    ),
                }]))
            }
        }),
    };
    Ok(Loaded {
        zones: set,
        site,
        insides,
    })
}

/// DC `dc` must have a load feed in the zones that name it: its report
/// reaches this node's prices and health, and other sites' DNS nodes,
/// through it (`load = { url = "http://THIS-NODE:5380/v1/site" }`).
fn fed(set: &ZoneSet, file: &Path, dc: &str) -> Result<(), Diagnostics> {
    let unfed = set
        .zones
        .iter()
        .flat_map(|z| &z.datacenters)
        .any(|d| d.name == dc && d.load.as_ref().is_none_or(|l| l.url.is_none()));
    if !unfed {
        return Ok(());
    }
    Err(Diagnostics(vec![Diagnostic {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        message: format!(
            "--datacenter {dc}: datacenters.{dc} needs load = {{ url = \"http://<its DNS node's API>/v1/site\" }}: \
             its report reaches every DNS node's prices and health through that feed"
        ),
    }]))
}

/// A DC that reports (it has an inside) must be polled at least twice per
/// report: a node that misses a report takes different EWMA steps than the
/// others, and its prices part from theirs.
fn every_report_seen<'a>(
    set: &ZoneSet,
    file: &Path,
    sites: impl Iterator<Item = &'a Site>,
) -> Result<(), Diagnostics> {
    let mut problems = Vec::new();
    for site in sites.filter(|s| s.l4.is_some() || s.l7.is_some()) {
        let every = site.dataplane.interval;
        let polled = set
            .zones
            .iter()
            .flat_map(|z| &z.datacenters)
            .filter(|d| d.name == site.datacenter)
            .filter_map(|d| d.load.as_ref().filter(|l| l.url.is_some()))
            .map(|l| l.interval)
            .max();
        if let Some(poll) = polled.filter(|p| *p * 2 > every) {
            problems.push(Diagnostic {
                file: file.to_path_buf(),
                line: 1,
                col: 1,
                message: format!(
                    "datacenters.{dc}: load.interval ({poll:?}) must be at most half of dataplane.interval ({every:?}), \
                     so that every DNS node sees every report and computes the same prices",
                    dc = site.datacenter
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(problems))
    }
}
