//! The price μ of a datacenter: load enters steering as a chemical potential
//! updated by bounded dual ascent, not as a penalty that grows with load.
//!
//! A penalty like ρ/(1−ρ) reacts to load the moment it is seen, and because
//! resolvers cache answers for a TTL, every cell flees a hot DC at once and
//! then returns at once (the herd effect). The price instead moves by a
//! bounded step per load interval, `μ ← clamp(μ + clamp(η(ρ − ρ*), −η, η), 0,
//! μ_max)`: a DC under its target keeps μ = 0 and geography decides; a DC
//! over it raises its price just until the demand it sheds fits. Its fixed
//! point is the entropy-regularised optimal transport of demand onto capacity.

/// The zone's price parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceParams {
    /// ρ*: utilisation above which a DC's price rises.
    pub target_utilisation: f64,
    /// η: gain of the step and its bound (energy units per interval).
    pub step: f64,
    /// Upper bound of μ, so a DC that never recovers does not drift forever.
    pub max: f64,
}

/// One dual-ascent step of a DC's price from its smoothed utilisation.
pub fn update_price(mu: f64, utilisation: f64, p: &PriceParams) -> f64 {
    let rho = if utilisation.is_finite() {
        utilisation.max(0.0)
    } else {
        0.0
    };
    let delta = (p.step * (rho - p.target_utilisation)).clamp(-p.step, p.step);
    let next = (mu + delta).clamp(0.0, p.max);
    // Snap tiny leftovers to exactly zero so "no price" is visible as 0.
    if next < 1e-9 {
        0.0
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PriceParams = PriceParams {
        target_utilisation: 0.85,
        step: 0.5,
        max: 10.0,
    };

    #[test]
    fn below_target_stays_free() {
        assert_eq!(update_price(0.0, 0.3, &P), 0.0);
    }

    #[test]
    fn above_target_rises_by_bounded_steps() {
        let mut mu = 0.0;
        let mut last = 0.0;
        for _ in 0..5 {
            mu = update_price(mu, 5.0, &P);
            assert!(mu - last <= P.step + 1e-12);
            assert!(mu > last);
            last = mu;
        }
        for _ in 0..100 {
            mu = update_price(mu, 5.0, &P);
        }
        assert_eq!(mu, P.max);
    }

    #[test]
    fn decays_back_to_zero() {
        let mut mu = 2.0;
        for _ in 0..10 {
            mu = update_price(mu, 0.0, &P);
        }
        assert_eq!(mu, 0.0);
        assert_eq!(update_price(1.0, f64::NAN, &P), 1.0 - 0.425);
    }
}
