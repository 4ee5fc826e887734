//! `datacenters.toml`: the datacenters declared once for every zone beside
//! it. The file is compiled once per load (each DC by the same check as a
//! zone's own, errors at the file's own `file:line:col`); a zone then gets
//! its own DCs followed by the shared ones its steered records name.
//!
//! A DC's inside (`l4`, `l7`, `dataplane`) belongs to this file and is read
//! by `boltz-site`; here it is accepted and ignored, and refused in a zone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::LowerName;

use super::datacenter::datacenter;
use super::{parse_toml, Ctx};
use crate::zone::model::{DatacentersFile, ZoneFile};
use crate::zone::{Datacenter, Node};
use boltz_core::diag::{Diagnostic, Positions};

/// The name of the shared file, in the zones directory or beside the zone
/// file.
pub(in crate::zone) const DATACENTERS_FILE: &str = "datacenters.toml";

/// `datacenters.toml` compiled: what zones resolve DC names against.
pub(in crate::zone) struct SharedDcs {
    file: PathBuf,
    /// In file order.
    dcs: Vec<SharedDc>,
    /// False when the file could not be read or parsed: a name it might
    /// declare is then not reported as unknown (the file's error is).
    complete: bool,
}

struct SharedDc {
    dc: Datacenter,
    /// Where its `[datacenters.NAME]` names it.
    line: usize,
    col: usize,
}

impl SharedDcs {
    /// Stands for a file that could not be read (its error is reported by
    /// the caller).
    pub(in crate::zone) fn unreadable(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            dcs: Vec::new(),
            complete: false,
        }
    }

    /// `file:line:col` of the declaration of DC `name`, if it has one here.
    fn declared_at(&self, name: &str) -> Option<String> {
        let s = self.dcs.iter().find(|s| s.dc.name == name)?;
        Some(format!("{}:{}:{}", self.file.display(), s.line, s.col))
    }
}

/// Checks and compiles `datacenters.toml`: every DC, referenced by a zone
/// or not, with the problems found (empty when it is clean).
pub(in crate::zone) fn shared(file: &Path, text: &str) -> (SharedDcs, Vec<Diagnostic>) {
    let mut cx = Ctx {
        pos: Positions::new(file, text),
        diags: Vec::new(),
    };
    let mut shared = SharedDcs::unreadable(file);
    if let Some(df) = parse_toml::<DatacentersFile>(&mut cx, text) {
        let mut defs: Vec<_> = df.datacenters.iter().collect();
        // The map is in name order; zones list shared DCs in file order.
        defs.sort_by_key(|(name, _)| name.span().start);
        for (name, def) in defs {
            let (line, col) = cx.pos.line_col(name.span().start);
            let dc = datacenter(&mut cx, name, def);
            shared.dcs.push(SharedDc { dc, line, col });
        }
        shared.complete = true;
    }
    cx.diags.sort_by_key(|d| (d.line, d.col));
    (shared, cx.diags)
}

/// The DCs a zone's records resolve names against: its own tables (checked
/// here for what only the shared file may hold), then every shared DC it
/// does not declare itself. [`keep_referenced`] later drops the shared ones
/// no steered name uses. Also returns how many are the zone's own.
pub(super) fn candidates(
    cx: &mut Ctx<'_>,
    zf: &ZoneFile,
    shared: Option<&SharedDcs>,
) -> (Vec<Datacenter>, usize) {
    let mut dcs = Vec::new();
    for (name, def) in &zf.datacenters {
        let n = name.get_ref();
        if let Some(at) = shared.and_then(|s| s.declared_at(n)) {
            cx.err(
                name.span(),
                format!(
                    "datacenters.{n} is also declared in {at}; declare it once (remove it here)"
                ),
            );
        }
        let d = def.get_ref();
        for (key, v) in [("l4", &d.l4), ("l7", &d.l7), ("dataplane", &d.dataplane)] {
            if let Some(v) = v {
                cx.err(
                    v.span(),
                    format!("datacenters.{n}.{key}: a datacenter's inside (l4, l7, dataplane) is declared in {DATACENTERS_FILE}"),
                );
            }
        }
        dcs.push(datacenter(cx, name, def));
    }
    let own = dcs.len();
    if let Some(s) = shared {
        let declared = |n: &str| dcs[..own].iter().any(|d| d.name == n);
        let from_shared: Vec<Datacenter> = s
            .dcs
            .iter()
            .filter(|s| !declared(&s.dc.name))
            .map(|s| s.dc.clone())
            .collect();
        dcs.extend(from_shared);
    }
    (dcs, own)
}

/// Drops the shared DCs (those after the zone's `own`) that no steered
/// name uses, renumbering the steered names' indices to match.
pub(super) fn keep_referenced(
    dcs: &mut Vec<Datacenter>,
    own: usize,
    nodes: &mut HashMap<LowerName, Node>,
) {
    let mut used: Vec<bool> = (0..dcs.len()).map(|i| i < own).collect();
    for s in nodes.values().filter_map(|n| n.steered.as_ref()) {
        for &i in &s.datacenters {
            used[i] = true;
        }
    }
    // Old index → new index (meaningful for the DCs kept).
    let mut next = 0;
    let renumbered: Vec<usize> = used
        .iter()
        .map(|&u| {
            let i = next;
            next += usize::from(u);
            i
        })
        .collect();
    let mut keep = used.iter();
    dcs.retain(|_| *keep.next().unwrap_or(&false));
    for s in nodes.values_mut().filter_map(|n| n.steered.as_mut()) {
        for i in &mut s.datacenters {
            *i = renumbered[*i];
        }
    }
}

/// Why name `n` resolves to no DC, or `None` when that cannot be told
/// because the shared file is broken (its own error says so).
pub(super) fn unknown_datacenter(shared: Option<&SharedDcs>, n: &str) -> Option<String> {
    match shared {
        None => Some(format!("unknown datacenter `{n}`")),
        Some(s) if s.complete => Some(format!(
            "unknown datacenter `{n}` (declared neither in this zone nor in {})",
            s.file.display()
        )),
        Some(_) => None,
    }
}
