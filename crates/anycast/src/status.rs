//! What the anycast driver shows of itself: per prefix the state, why and
//! since when, the last probe, whether the speaker agrees, and counters;
//! the operator's drain. `/v1/anycast` and `/v1/status` serve [`Status::document`],
//! `/metrics` [`Status::render`]; `boltz anycast exabgp` reads the document
//! back ([`crate::exabgp`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use boltz_core::prometheus::{Exposition, Kind};
use serde::{Deserialize, Serialize};

use crate::announce::Want;
use crate::config::{Config, SpeakerKind};

/// One prefix as shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefixState {
    /// The prefix.
    pub prefix: String,
    /// The static protocol announcing it.
    pub protocol: String,
    /// Its graceful-shutdown variant.
    pub drain_protocol: Option<String>,
    /// `announced`, `draining` or `withdrawn`.
    pub state: Want,
    /// Why: `starting`, `healthy`, `failing: …`, `held-down`, `drained`,
    /// `stopping`.
    pub reason: String,
    /// When the state last changed, Unix ms.
    pub since_unix_ms: u64,
    /// The last probe's failure (`null`: it passed, or none yet).
    pub probe_error: Option<String>,
    /// Whether the speaker was last seen doing what is wanted.
    pub in_sync: bool,
    /// The speaker's last error, if the last command failed.
    pub speaker_error: Option<String>,
    /// State changes since start.
    pub changes: u64,
    /// Probes that failed since start.
    pub probe_failures: u64,
    /// Times the speaker was found out of step (BIRD restarted, someone
    /// toggled a protocol) and put right.
    pub reasserts: u64,
    /// Commands to the speaker that failed.
    pub speaker_errors: u64,
}

impl PrefixState {
    /// A prefix nothing has happened to: withdrawn, starting.
    pub fn new(prefix: impl Into<String>) -> PrefixState {
        PrefixState {
            prefix: prefix.into(),
            protocol: String::new(),
            drain_protocol: None,
            state: Want::Withdrawn,
            reason: "starting".into(),
            since_unix_ms: 0,
            probe_error: None,
            in_sync: false,
            speaker_error: None,
            changes: 0,
            probe_failures: 0,
            reasserts: 0,
            speaker_errors: 0,
        }
    }
}

/// The driver's state, shared with the API.
#[derive(Debug)]
pub struct Status {
    speaker: SpeakerKind,
    drained: AtomicBool,
    /// The drain file exists (as of the last pass).
    file_drained: AtomicBool,
    prefixes: Mutex<Vec<PrefixState>>,
    /// Wakes the driver when the drain changes (it acts at once, not at
    /// the next interval).
    pub(crate) wake: tokio::sync::Notify,
}

/// The document `/v1/anycast` serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// `bird` or `exabgp`.
    pub speaker: String,
    /// Drained, through the API or the drain file.
    pub drained: bool,
    /// Drained by the drain file (it exists).
    #[serde(default)]
    pub drain_file: bool,
    /// The prefixes.
    pub prefixes: Vec<PrefixState>,
}

impl Status {
    /// Every prefix of `cfg`, withdrawn and starting.
    pub fn new(cfg: &Config) -> Status {
        let now = boltz_core::clock::unix_ms().unwrap_or(0);
        Status {
            speaker: cfg.speaker,
            drained: AtomicBool::new(false),
            file_drained: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            prefixes: Mutex::new(
                cfg.prefixes
                    .iter()
                    .map(|p| PrefixState {
                        protocol: p.protocol.clone(),
                        drain_protocol: p.drain_protocol.clone(),
                        since_unix_ms: now,
                        ..PrefixState::new(p.prefix.to_string())
                    })
                    .collect(),
            ),
        }
    }

    /// Drains (or undrains) every prefix; `true` if that changed anything.
    pub fn set_drained(&self, drained: bool) -> bool {
        let changed = self.drained.swap(drained, Ordering::SeqCst) != drained;
        if changed {
            self.wake.notify_one();
        }
        changed
    }

    /// Whether the API drained the prefixes.
    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::SeqCst)
    }

    /// Records whether the drain file exists.
    pub(crate) fn set_file_drained(&self, on: bool) {
        self.file_drained.store(on, Ordering::SeqCst);
    }

    /// Drained by the API or by the drain file.
    pub fn drained_any(&self) -> bool {
        self.drained() || self.file_drained.load(Ordering::SeqCst)
    }

    /// Changes prefix `i`'s state.
    pub(crate) fn update(&self, i: usize, f: impl FnOnce(&mut PrefixState)) {
        let mut ps = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = ps.get_mut(i) {
            f(p);
        }
    }

    /// The prefixes now.
    pub fn prefixes(&self) -> Vec<PrefixState> {
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The document served.
    pub fn document(&self) -> Document {
        Document {
            speaker: match self.speaker {
                SpeakerKind::Bird => "bird",
                SpeakerKind::Exabgp => "exabgp",
            }
            .into(),
            drained: self.drained_any(),
            drain_file: self.file_drained.load(Ordering::SeqCst),
            prefixes: self.prefixes(),
        }
    }

    /// The anycast families in `/metrics`.
    pub fn render(&self, e: &mut Exposition) {
        let ps = self.prefixes();
        {
            let mut f = e.family(
                "boltz_anycast_state",
                Kind::Gauge,
                "1 for what each anycast prefix is: announced, draining (graceful-shutdown community) or withdrawn.",
            );
            for p in &ps {
                for (w, name) in [
                    (Want::Announced, "announced"),
                    (Want::Draining, "draining"),
                    (Want::Withdrawn, "withdrawn"),
                ] {
                    f.sample(
                        &[("prefix", &p.prefix), ("state", name)],
                        u64::from(p.state == w),
                    );
                }
            }
        }
        {
            let mut f = e.family(
                "boltz_anycast_in_sync",
                Kind::Gauge,
                "1 when the BGP speaker was last seen announcing what boltz wants.",
            );
            for p in &ps {
                f.sample(&[("prefix", &p.prefix)], u64::from(p.in_sync));
            }
        }
        type Field = fn(&PrefixState) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "boltz_anycast_changes_total",
                "Changes of an anycast prefix's state.",
                |p| p.changes,
            ),
            (
                "boltz_anycast_probe_failures_total",
                "Self-probes (or L4 checks) of an anycast prefix that failed.",
                |p| p.probe_failures,
            ),
            (
                "boltz_anycast_reasserts_total",
                "Times the speaker was found out of step and put right (e.g. BIRD restarted).",
                |p| p.reasserts,
            ),
            (
                "boltz_anycast_speaker_errors_total",
                "Commands to the BGP speaker that failed.",
                |p| p.speaker_errors,
            ),
        ];
        for (name, help, field) in counters {
            let mut f = e.family(name, Kind::Counter, help);
            for p in &ps {
                f.sample(&[("prefix", &p.prefix)], field(p));
            }
        }
        e.single(
            "boltz_anycast_drained",
            Kind::Gauge,
            "1 while the operator has drained this node's anycast prefixes (API or drain file).",
            u64::from(self.drained_any()),
        );
    }
}
