//! Slow start: the price at which a DC that comes back enters (no cell
//! prefers it), set by [`admit`] the moment it comes back and by the step
//! for DCs it finds back.

use super::{Controller, DcInput, PriceParams, PricePhase, PriceState};

/// A returning DC enters this many T above the price that makes it nobody's
/// best choice.
const ENTRY_MARGIN: f64 = 5.0;

/// Prices DCs that just became usable (undrained, healthy again) out of
/// every cell at once, without a price step: the server calls it the
/// moment a DC comes back, so no query is answered with the price it had
/// when it left (which would stampede it until the next step).
pub fn admit(
    states: &mut [PriceState],
    inputs: &[DcInput],
    pair_energy: &[f64],
    t: f64,
    p: &PriceParams,
) {
    if p.controller != Controller::Balance {
        return;
    }
    let entering = enter(states, inputs, pair_energy, t, p);
    for ((s, d), e) in states.iter_mut().zip(inputs).zip(entering) {
        if e {
            s.usable_before = d.usable;
        }
    }
}

/// DCs that are usable now and were not at the last step (after the first
/// step, so a cold start does not slow-start everything) enter at a price
/// no cell prefers: by the triangle inequality, a client's energy at DC `i`
/// is then at least ENTRY_MARGIN·T above its energy at some usable `j`.
/// Returns which DCs entered.
pub(super) fn enter(
    states: &mut [PriceState],
    inputs: &[DcInput],
    pair_energy: &[f64],
    t: f64,
    p: &PriceParams,
) -> Vec<bool> {
    let n = inputs.len();
    let entering: Vec<bool> = (0..n)
        .map(|i| inputs[i].usable && states[i].seen && !states[i].usable_before)
        .collect();
    for i in (0..n).filter(|&i| entering[i]) {
        let cheapest = (0..n)
            .filter(|&j| j != i && inputs[j].usable && !entering[j])
            .map(|j| pair_energy[i * n + j] + states[j].mu)
            .fold(f64::INFINITY, f64::min);
        let s = &mut states[i];
        s.ramp = (p.slow_start > 0).then_some(0);
        s.probe = 1.0;
        // Alone in the zone: nothing to protect it from, no entry price.
        s.mu = if cheapest.is_finite() {
            (cheapest + ENTRY_MARGIN * t).min(p.max)
        } else {
            0.0
        };
        s.phase = PricePhase::Ramping;
    }
    entering
}
