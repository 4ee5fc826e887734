//! The temperature T of a zone: fixed, or rising linearly with the zone's
//! global utilisation so an idle system steers greedily and a loaded one
//! spreads.

/// How the zone sets its temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Temperature {
    /// The same T whatever the load.
    Fixed(f64),
    /// Linear in global utilisation between `min` (idle) and `max` (at or
    /// above capacity).
    Auto {
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
    /// `T` for a given global utilisation Σload/Σcapacity.
    pub fn at(&self, global_utilisation: f64) -> f64 {
        let t = match *self {
            Temperature::Fixed(t) => t,
            Temperature::Auto { min, max } => {
                let u = if global_utilisation.is_finite() {
                    global_utilisation.clamp(0.0, 1.0)
                } else {
                    1.0
                };
                min + (max - min) * u
            }
        };
        t.max(MIN_TEMPERATURE)
    }
}
