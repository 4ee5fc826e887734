//! The ExaBGP adapter. ExaBGP runs a process and reads announce/withdraw
//! lines from its stdout; `boltz anycast exabgp --api URL` is that
//! process: it reads `/v1/anycast` every few hundred milliseconds and
//! prints what changed. If boltz stops answering for `lost`, everything it
//! announced is withdrawn (a dead or hung server attracts nothing).
//!
//! ```text
//! process boltz {
//!     run /usr/bin/boltz anycast exabgp --api http://127.0.0.1:5380;
//!     encoder text;
//! }
//! ```

use std::collections::BTreeMap;

use crate::announce::Want;
use crate::status::Document;

/// RFC 8326's GRACEFUL_SHUTDOWN community, as ExaBGP writes it.
pub const GRACEFUL_SHUTDOWN: &str = "65535:0";

/// What the follower last printed, per prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Follower {
    said: BTreeMap<String, Want>,
}

impl Follower {
    /// The lines that bring ExaBGP from what was said to `doc`.
    pub fn follow(&mut self, doc: &Document) -> Vec<String> {
        let now: BTreeMap<String, Want> = doc
            .prefixes
            .iter()
            .map(|p| (p.prefix.clone(), p.state))
            .collect();
        let mut out = Vec::new();
        // Prefixes no longer listed (a changed file) are withdrawn.
        for (prefix, was) in &self.said {
            if !now.contains_key(prefix) && *was != Want::Withdrawn {
                out.push(line(prefix, Want::Withdrawn));
            }
        }
        for (prefix, want) in &now {
            let was = self.said.get(prefix).copied();
            // A first look withdraws too, so a restarted follower is sure.
            if was != Some(*want) {
                out.push(line(prefix, *want));
            }
        }
        self.said = now;
        out
    }

    /// The lines that withdraw everything announced (boltz is gone).
    pub fn lost(&mut self) -> Vec<String> {
        let out = self
            .said
            .iter()
            .filter(|(_, w)| **w != Want::Withdrawn)
            .map(|(p, _)| line(p, Want::Withdrawn))
            .collect();
        for w in self.said.values_mut() {
            *w = Want::Withdrawn;
        }
        out
    }
}

/// ExaBGP's line for `prefix` in state `want`.
pub fn line(prefix: &str, want: Want) -> String {
    match want {
        Want::Announced => format!("announce route {prefix} next-hop self"),
        Want::Draining => {
            format!("announce route {prefix} next-hop self community [{GRACEFUL_SHUTDOWN}]")
        }
        Want::Withdrawn => format!("withdraw route {prefix} next-hop self"),
    }
}

#[cfg(test)]
mod tests;
