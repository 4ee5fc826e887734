//! The first design, `controller = "step"`: fixed-gain dual ascent, kept so
//! `boltz simulate` can show what it does.

use super::{finite, PriceParams};

/// One fixed-gain dual-ascent step ([`Controller::Step`](super::Controller::Step)).
pub(super) fn update_price_step(mu: f64, utilisation: f64, p: &PriceParams) -> f64 {
    let rho = finite(utilisation);
    let delta = (p.step * (rho - p.target_utilisation)).clamp(-p.step, p.step);
    let next = (mu + delta).clamp(0.0, p.max);
    // Snap tiny leftovers to exactly zero so "no price" is visible as 0.
    if next < 1e-9 {
        0.0
    } else {
        next
    }
}
