//! Turning what is wanted into what the BGP speaker does.
//!
//! With BIRD each prefix has a static protocol (and maybe a drain
//! variant); a state is a pair of enabled/disabled protocols, set by
//! enabling first and disabling second, so moving between the variants
//! never leaves the prefix unannounced. Every command is idempotent:
//! applying the same state every second re-asserts it, and a reply that
//! says something changed means BIRD had drifted (restarted, or someone
//! toggled a protocol by hand).
//!
//! With ExaBGP boltz only publishes the state (`/v1/anycast`); the process
//! ExaBGP runs (`boltz anycast exabgp`) turns it into its lines.

use std::collections::BTreeSet;

use crate::announce::Want;
use crate::bird::{Bird, BirdError};
use crate::config::{Config, Prefix, SpeakerKind};

/// Who carries out the wanted states.
#[derive(Clone, Debug)]
pub enum Speaker {
    /// BIRD over its control socket.
    Bird(Bird),
    /// ExaBGP, which follows `/v1/anycast` by itself.
    Published,
}

impl Speaker {
    /// The speaker `cfg` names.
    pub fn of(cfg: &Config) -> Speaker {
        match cfg.speaker {
            SpeakerKind::Bird => Speaker::Bird(Bird::new(&cfg.bird_socket)),
            SpeakerKind::Exabgp => Speaker::Published,
        }
    }

    /// Makes `p` be `want`; `true` if the speaker changed anything.
    pub async fn apply(&self, p: &Prefix, want: Want) -> Result<bool, BirdError> {
        let Speaker::Bird(bird) = self else {
            return Ok(false);
        };
        let drain = p.drain_protocol.as_deref();
        let (on, off): (Vec<&str>, Vec<&str>) = match (want, drain) {
            (Want::Announced, d) => (vec![&p.protocol], d.into_iter().collect()),
            (Want::Draining, Some(d)) => (vec![d], vec![&p.protocol]),
            // No variant: a drain is a withdrawal.
            (Want::Draining, None) => (vec![], vec![&p.protocol]),
            (Want::Withdrawn, d) => (
                vec![],
                std::iter::once(p.protocol.as_str()).chain(d).collect(),
            ),
        };
        let mut changed = false;
        for name in on {
            changed |= bird.enable(name).await?;
        }
        for name in off {
            changed |= bird.disable(name).await?;
        }
        Ok(changed)
    }
}

/// What is wrong with BIRD's protocols for `cfg`: names it does not know,
/// and protocols that are not static (toggling a BGP session would reset
/// it). Empty when all is well.
pub async fn check_protocols(bird: &Bird, cfg: &Config) -> Result<Vec<String>, BirdError> {
    let known = bird.protocols().await?;
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = known.iter().map(|p| p.name.as_str()).collect();
    for p in &cfg.prefixes {
        for (name, what) in std::iter::once((&p.protocol, "protocol"))
            .chain(p.drain_protocol.as_ref().map(|d| (d, "drain_protocol")))
        {
            match known.iter().find(|k| &k.name == name) {
                None => problems.push(format!(
                    "{}: {what} {name:?} for {} is not a protocol BIRD at {} knows (it has: {})",
                    cfg.file.display(),
                    p.prefix,
                    bird.socket().display(),
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                Some(k) if !k.kind.eq_ignore_ascii_case("static") => problems.push(format!(
                    "{}: {what} {name:?} for {} is a {} protocol in BIRD; boltz toggles static protocols only (toggling a session would reset it)",
                    cfg.file.display(),
                    p.prefix,
                    k.kind
                )),
                Some(_) => {}
            }
        }
    }
    Ok(problems)
}
