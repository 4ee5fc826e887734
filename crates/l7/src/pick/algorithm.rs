//! The catalogue's names: [`Algorithm`] as the configuration spells it
//! (serde and [`FromStr`] agree, `p2c` is an alias of `p2c-peak-ewma`),
//! and the error for a name that is not in it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A load-balancing algorithm, as named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Power of two choices over PeakEWMA cost (Finagle, Linkerd).
    #[default]
    #[serde(alias = "p2c")]
    P2cPeakEwma,
    RoundRobin,
    WeightedRoundRobin,
    SmoothWeightedRoundRobin,
    /// Power of two choices over in-flight requests (Envoy's least_request).
    LeastRequest,
    LeastConnections,
    LeastTime,
    Random,
    RingHash,
    Maglev,
    /// `P ∝ w · exp(−E/T)`, E = load against capacity (plus latency), T
    /// rising with the pool's utilisation.
    Boltzmann,
}

impl Algorithm {
    pub const ALL: [Algorithm; 11] = [
        Algorithm::P2cPeakEwma,
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::SmoothWeightedRoundRobin,
        Algorithm::LeastRequest,
        Algorithm::LeastConnections,
        Algorithm::LeastTime,
        Algorithm::Random,
        Algorithm::RingHash,
        Algorithm::Maglev,
        Algorithm::Boltzmann,
    ];

    /// The configuration name (the same as serde's).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::P2cPeakEwma => "p2c-peak-ewma",
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::SmoothWeightedRoundRobin => "smooth-weighted-round-robin",
            Algorithm::LeastRequest => "least-request",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::LeastTime => "least-time",
            Algorithm::Random => "random",
            Algorithm::RingHash => "ring-hash",
            Algorithm::Maglev => "maglev",
            Algorithm::Boltzmann => "boltzmann",
        }
    }

    /// Whether the algorithm maps an affinity key (`PickContext::hash`).
    pub fn uses_hash(self) -> bool {
        matches!(self, Algorithm::RingHash | Algorithm::Maglev)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancing algorithm {0:?} (valid: p2c-peak-ewma (or p2c), round-robin, weighted-round-robin, smooth-weighted-round-robin, least-request, least-connections, least-time, random, ring-hash, maglev, boltzmann)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "p2c" {
            return Ok(Algorithm::P2cPeakEwma);
        }
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_print_and_deserialize() {
        for a in Algorithm::ALL {
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), a);
        }
        assert_eq!(Algorithm::default(), Algorithm::P2cPeakEwma);
        assert_eq!("p2c".parse::<Algorithm>(), Ok(Algorithm::P2cPeakEwma));
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"p2c\"").unwrap(),
            Algorithm::P2cPeakEwma
        );
        #[derive(Deserialize)]
        struct Pool {
            algorithm: Algorithm,
        }
        let p: Pool = toml::from_str("algorithm = \"smooth-weighted-round-robin\"").unwrap();
        assert_eq!(p.algorithm, Algorithm::SmoothWeightedRoundRobin);
        let e = "wrr".parse::<Algorithm>().unwrap_err().to_string();
        assert!(
            e.contains("\"wrr\"") && e.contains("least-time") && e.contains("boltzmann"),
            "{e}"
        );
        assert!(toml::from_str::<Pool>("algorithm = \"wrr\"").is_err());
    }
}
