//! A scenario: how long the simulated world runs, how resolvers cache, and
//! what happens when (capacity lost, drain, failure, a regional crowd, one
//! client moved). Read from TOML; the standard ones are built in.

use std::path::Path;

use serde::Deserialize;

/// One simulated run's script.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name in tables and file names.
    pub name: String,
    /// Load intervals to run.
    #[serde(default = "default_intervals")]
    pub intervals: u32,
    /// Load intervals a resolver keeps an answer (the steered names' TTL is
    /// set to match, so the zone's `demand_lag = "auto"` sees it).
    #[serde(default = "one")]
    pub cache_intervals: u32,
    /// Total demand in requests/s, overriding `--demand` (a scenario that
    /// takes a DC away needs the rest to have room for it).
    pub demand: Option<f64>,
    /// Daily swing of demand: `{ amplitude = 0.3, period = 288 }` (intervals).
    pub diurnal: Option<Diurnal>,
    /// What happens, in order of `at`.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// A sinusoidal daily swing of every client's demand.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diurnal {
    /// Relative swing (0.3 = ±30 %).
    pub amplitude: f64,
    /// Intervals per day.
    pub period: u32,
}

/// Something that happens at the start of interval `at`. (Unknown keys
/// are refused by [`EventKind`]: `flatten` cannot refuse them here.)
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    /// The interval it happens at.
    pub at: u32,
    /// What happens.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an event does.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EventKind {
    /// The DC's real capacity becomes `factor` × its declared capacity (the
    /// zone still says the declared one).
    Capacity {
        /// The DC.
        dc: String,
        /// Share of the declared capacity it has now.
        factor: f64,
    },
    /// The operator drains the DC.
    Drain {
        /// The DC.
        dc: String,
    },
    /// The operator undrains it.
    Undrain {
        /// The DC.
        dc: String,
    },
    /// Its health checks fail.
    Down {
        /// The DC.
        dc: String,
    },
    /// Its health checks pass again.
    Up {
        /// The DC.
        dc: String,
    },
    /// Clients within `radius_km` of `near` demand `factor` × their base.
    Crowd {
        /// Centre `[lat, lon]`.
        near: [f64; 2],
        /// Radius of the region.
        radius_km: f64,
        /// Demand multiplier (1 ends the crowd).
        factor: f64,
    },
    /// Client number `client` is moved to `to` (a network whose geolocation
    /// changed): the butterfly.
    Move {
        /// Index of the client.
        client: usize,
        /// Its new `[lat, lon]`.
        to: [f64; 2],
    },
}

fn default_intervals() -> u32 {
    60
}

fn one() -> u32 {
    1
}

/// The scenarios shipped in `simulate/scenarios/`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "steady",
        include_str!("../../../simulate/scenarios/steady.toml"),
    ),
    (
        "capacity-loss",
        include_str!("../../../simulate/scenarios/capacity-loss.toml"),
    ),
    (
        "drain",
        include_str!("../../../simulate/scenarios/drain.toml"),
    ),
    (
        "failure",
        include_str!("../../../simulate/scenarios/failure.toml"),
    ),
    (
        "flash-crowd",
        include_str!("../../../simulate/scenarios/flash-crowd.toml"),
    ),
    (
        "rise",
        include_str!("../../../simulate/scenarios/rise.toml"),
    ),
    (
        "butterfly",
        include_str!("../../../simulate/scenarios/butterfly.toml"),
    ),
    (
        "lagged",
        include_str!("../../../simulate/scenarios/lagged.toml"),
    ),
    (
        "diurnal",
        include_str!("../../../simulate/scenarios/diurnal.toml"),
    ),
];

/// A scenario that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    #[error("{0}: no built-in scenario of that name and no such file ({1})")]
    Missing(String, std::io::Error),
    /// Not a valid scenario.
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(name_or_path, text);
        }
        let text = std::fs::read_to_string(Path::new(name_or_path))
            .map_err(|e| ScenarioError::Missing(name_or_path.to_string(), e))?;
        Scenario::parse(name_or_path, &text)
    }

    /// Parses and checks a scenario; errors name `file:line:col`.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let pos = boltz_core::diag::Positions::new(Path::new(file), text);
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ScenarioError::Invalid(pos.at(span, e.message().trim()).to_string())
        })?;
        let bad = |m: String| Err(ScenarioError::Invalid(format!("{file}: {m}")));
        if s.intervals == 0 || s.cache_intervals == 0 {
            return bad("intervals and cache_intervals must be at least 1".into());
        }
        for e in &s.events {
            if e.at >= s.intervals {
                return bad(format!(
                    "an event at {} is past the last interval ({})",
                    e.at,
                    s.intervals - 1
                ));
            }
            match &e.kind {
                EventKind::Capacity { factor, .. } if !(*factor > 0.0 && factor.is_finite()) => {
                    return bad(format!("capacity factor must be > 0, got {factor}"));
                }
                EventKind::Crowd {
                    factor, radius_km, ..
                } if !(*factor >= 0.0 && *radius_km > 0.0) => {
                    return bad("crowd needs factor ≥ 0 and radius_km > 0".into());
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_parses() {
        for (name, _) in BUILTIN {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&s.name, name);
        }
    }

    #[test]
    fn errors_name_the_place() {
        let e = Scenario::parse(
            "x.toml",
            "name = \"x\"\n[[events]]\nat = 1\nkind = \"melt\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.toml:"), "{e}");
        assert!(e.contains("melt"), "{e}");
        let e = Scenario::parse(
            "y.toml",
            "name = \"y\"\nintervals = 5\n[[events]]\nat = 9\nkind = \"drain\"\ndc = \"fra\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("past the last interval"), "{e}");
        let e = Scenario::load("no-such-scenario").unwrap_err().to_string();
        assert!(e.contains("no built-in scenario"), "{e}");
    }
}
