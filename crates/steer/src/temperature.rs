//! The temperature T of a zone: fixed, or `auto`. T sets how far a client
//! may be sent for a lower price: at T = 0.05 and a distance scale of
//! 2000 km, a DC 100 km farther gets e⁻¹ of the nearer one's weight.
//!
//! `auto` does not follow total demand (steering cannot change it, and a
//! hot zone at high T spreads clients far from their nearest DC while the
//! prices already keep every DC under its target). It follows what makes
//! steering blind: the share of capacity whose load feed has gone stale.
//! With every feed fresh T stays at `min`, near the capacity-respecting
//! optimum; as feeds go stale the prices stop meaning anything and T rises
//! towards `max`, so no DC of unknown load takes a whole region.

/// How the zone sets its temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Temperature {
    /// The same T whatever happens.
    Fixed(f64),
    /// `min` while every load feed is fresh, rising linearly to `max` as
    /// the share of capacity with a stale feed rises to 1.
    Auto {
        /// T with every feed fresh.
        min: f64,
        /// T with every feed stale.
        max: f64,
    },
    /// The first design's `auto`, kept for `boltz simulate`'s comparison:
    /// linear in the global utilisation Σload/Σcapacity, which total demand
    /// pins and steering cannot change.
    Utilisation {
        /// T of an idle zone.
        min: f64,
        /// T of a zone at or above capacity.
        max: f64,
    },
}

/// The lowest temperature the maths accepts; below it `1/T` stops being a
/// meaningful number and the choice is greedy anyway.
pub const MIN_TEMPERATURE: f64 = 1e-3;

impl Temperature {
    /// `T` for the share of capacity (0..=1) whose load is unknown and the
    /// global utilisation Σload/Σcapacity.
    pub fn at(&self, blind_share: f64, global_utilisation: f64) -> f64 {
        let t = match *self {
            Temperature::Fixed(t) => t,
            Temperature::Auto { min, max } => min + (max - min) * unit(blind_share),
            Temperature::Utilisation { min, max } => min + (max - min) * unit(global_utilisation),
        };
        t.max(MIN_TEMPERATURE)
    }
}

/// `x` clamped into [0, 1]; not a number counts as 1 (know nothing).
fn unit(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        1.0
    }
}
