//! The `balance` controller's move: per-DC Newton steps on learned
//! elasticity, with the trust factor, the settled band, the demand lag and
//! what the zone has learned between steps ([`PriceMemory`]).

use super::predict::{solve, DemandMap};
use super::{finite, DcInput, PriceParams, PricePhase, PriceState};

/// The settled band: a DC with a price whose utilisation is within this
/// fraction of its target counts as on target (no move of its own, so no
/// cell flips). Without it, a DC a hair over its target keeps raising its
/// price by hairs while its neighbours' moves push it back over: the prices
/// creep.
const BAND: f64 = 0.02;
/// The stiffest response an elasticity may claim, relative to `1/T`:
/// demand far from any other DC hardly moves until μ nears the distance to
/// the next DC.
const MIN_OWN: f64 = 1.0 / 40.0;
/// The trust factor shrinks after overshoots to at least this.
const MIN_TRUST: f64 = 1.0 / 16.0;
/// Utilisation below this share of the target counts as "no demand" (a
/// logarithm needs a floor).
const FLOOR: f64 = 0.02;

/// What the zone's controller has learned from its own moves: each DC's
/// elasticity and trust, and the last move it is judging. Zone-wide,
/// because whether a move measured its own DC depends on the others'.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceMemory {
    /// `T · (−∂ln ρ_i/∂μ_i)` per DC, 0 until measured: dimensionless, so a
    /// change of T does not invalidate it.
    elasticity: Vec<f64>,
    /// Per DC: a factor on its steps, halved when it overshoots.
    trust: Vec<f64>,
    /// Per DC: the error its last move acted on.
    last_error: Vec<f64>,
    /// Prices and log-utilisations when the last move was made.
    last: Option<(Vec<f64>, Vec<f64>)>,
    hold: u32,
}

impl PriceMemory {
    /// Fits the memory to `n` DCs, starting over if the zone changed.
    pub(super) fn fit(&mut self, n: usize) {
        if self.trust.len() != n {
            *self = PriceMemory {
                elasticity: vec![0.0; n],
                trust: vec![1.0; n],
                last_error: vec![0.0; n],
                last: None,
                hold: 0,
            };
        }
    }

    /// Keeps the move being judged in the anchored frame: anchoring took
    /// `shift` off every usable DC's price.
    pub(super) fn anchored(&mut self, inputs: &[DcInput], shift: f64) {
        if let Some((mu, _)) = self.last.as_mut() {
            for (m, d) in mu.iter_mut().zip(inputs) {
                if d.usable {
                    *m -= shift;
                }
            }
        }
    }

    /// DC `i`'s elasticity, or `default` while it has measured none.
    fn elasticity_or(&self, i: usize, default: f64) -> f64 {
        if self.elasticity[i] > 0.0 {
            self.elasticity[i]
        } else {
            default
        }
    }

    /// Drops what was learned about DC `i`.
    fn forget(&mut self, i: usize) {
        self.elasticity[i] = 0.0;
        self.trust[i] = 1.0;
        self.last_error[i] = 0.0;
    }
}

/// One move of the priced DCs' prices (or a hold): model-predictive when
/// the zone has a demand map, else per-DC Newton steps.
#[allow(clippy::too_many_arguments)]
pub(super) fn balance(
    states: &mut [PriceState],
    m: &mut PriceMemory,
    inputs: &[DcInput],
    entering: &[bool],
    demand: Option<&DemandMap>,
    target: f64,
    t: f64,
    p: &PriceParams,
) {
    let n = inputs.len();
    for s in states.iter_mut() {
        if let Some(k) = s.ramp {
            let next = k + 1;
            s.ramp = (next < p.slow_start).then_some(next);
        }
    }
    // Per DC: its target, log-utilisation, error, and whether it takes
    // part in the move (has a price or is over its target).
    let tau: Vec<f64> = states.iter().map(|s| target * s.ramp_share(p)).collect();
    let ln_rho: Vec<f64> = (0..n)
        .map(|i| finite(inputs[i].utilisation).max(FLOOR * tau[i]).ln())
        .collect();
    let floored: Vec<bool> = (0..n)
        .map(|i| finite(inputs[i].utilisation) < FLOOR * tau[i])
        .collect();
    let mut error = vec![0.0; n];
    let mut active = vec![false; n];
    for i in 0..n {
        let s = &mut states[i];
        if !inputs[i].usable {
            s.phase = PricePhase::Unusable;
            continue;
        }
        let e = ln_rho[i] - tau[i].ln();
        if s.mu <= 0.0 && e <= 0.0 {
            s.phase = PricePhase::Free;
            continue;
        }
        active[i] = !entering[i];
        error[i] = if e.abs() <= BAND { 0.0 } else { e };
        s.phase = if s.ramp.is_some() {
            PricePhase::Ramping
        } else {
            PricePhase::Holding
        };
    }
    if !inputs.iter().any(|d| d.fresh) {
        return;
    }
    if m.hold > 0 {
        m.hold -= 1;
        return;
    }
    learn(m, states, inputs, &ln_rho, &floored, t);
    // Free DCs: the next disturbance starts afresh. (A DC on target keeps
    // its memory: where a metro's clients flip together, the trust it lost
    // to an overshoot is what stops the see-saw.)
    for (i, _) in active.iter().enumerate().filter(|(_, a)| !**a) {
        m.forget(i);
    }
    if (0..n).all(|i| !active[i] || error[i] == 0.0) {
        m.last = None;
        return;
    }
    let before: Vec<f64> = states.iter().map(|s| s.mu).collect();
    if let Some(map) = demand {
        if predicted(states, m, inputs, entering, map, &tau, t, p) {
            return;
        }
    }
    // A DC with no measurement of its own starts from what the zone's other
    // DCs measured (the geometric mean): how stiff demand is depends on the
    // geography and T, which they share. Without any, Sinkhorn's 1/T.
    let learned: Vec<f64> = m.elasticity.iter().copied().filter(|&e| e > 0.0).collect();
    let pooled = if learned.is_empty() {
        1.0
    } else {
        (learned.iter().map(|e| e.ln()).sum::<f64>() / learned.len() as f64).exp()
    };
    for i in (0..n).filter(|&i| active[i] && error[i] != 0.0) {
        // A move that overshot (its error changed sign) halves the DC's
        // next ones; moves that keep the sign earn the trust back.
        if m.last_error[i] != 0.0 {
            m.trust[i] = if m.last_error[i] * error[i] < 0.0 {
                (m.trust[i] * 0.5).max(MIN_TRUST)
            } else {
                (m.trust[i] * 1.5).min(1.0)
            };
        }
        m.last_error[i] = error[i];
        let el = m.elasticity_or(i, pooled);
        let s = &mut states[i];
        let mut dmu = m.trust[i] * error[i] / el * t;
        if floored[i] && error[i] < 0.0 {
            // No demand at all tells nothing: probe down in growing steps
            // until some arrives.
            dmu *= s.probe;
            s.probe = (s.probe * 2.0).min(1.0 / MIN_OWN);
        } else {
            s.probe = 1.0;
        }
        s.mu = (s.mu + dmu.clamp(-p.step, p.step)).clamp(0.0, p.max);
        if s.mu < 1e-9 {
            s.mu = 0.0;
        }
        if s.ramp.is_none() && s.mu != before[i] {
            s.phase = if s.mu > before[i] {
                PricePhase::Raising
            } else {
                PricePhase::Lowering
            };
        }
    }
    m.last = Some((before, ln_rho));
    m.hold = p.lag.saturating_sub(1);
}

/// The model-predictive move: every usable DC towards the prices at which
/// the demand map, calibrated by the measured loads, fits the targets,
/// each by at most `price_step`; entering DCs keep their entry price (and
/// are left out of the solve: no cell prefers them yet). Returns false when
/// the map cannot be used (the Newton move runs instead).
#[allow(clippy::too_many_arguments)]
fn predicted(
    states: &mut [PriceState],
    m: &mut PriceMemory,
    inputs: &[DcInput],
    entering: &[bool],
    map: &DemandMap,
    tau: &[f64],
    t: f64,
    p: &PriceParams,
) -> bool {
    let solvable: Vec<DcInput> = inputs
        .iter()
        .zip(entering)
        .map(|(d, e)| DcInput {
            usable: d.usable && !e,
            ..*d
        })
        .collect();
    let mu: Vec<f64> = states.iter().map(|s| s.mu).collect();
    let Some(want) = solve(map, &solvable, &mu, tau, t) else {
        return false;
    };
    for (i, s) in states.iter_mut().enumerate() {
        if !solvable[i].usable {
            continue;
        }
        let next = (s.mu + (want[i] - s.mu).clamp(-p.step, p.step)).clamp(0.0, p.max);
        if s.ramp.is_none() && next != s.mu {
            s.phase = if next > s.mu {
                PricePhase::Raising
            } else {
                PricePhase::Lowering
            };
        }
        s.mu = if next < 1e-9 { 0.0 } else { next };
        s.probe = 1.0;
    }
    m.last = None;
    m.hold = p.lag.saturating_sub(1);
    true
}

/// Each DC's elasticity from the last move, where that move measured it:
/// the DC moved, and the other DCs together moved less than half as much
/// (otherwise their shed or won clients are in the measurement, and two
/// neighbours raising together would each take the other's shed clients
/// for stiff demand), and it had demand at both ends (the floor hides the
/// response). Bounded between MIN_OWN and 1 (in units of 1/T: Sinkhorn's
/// bound, the most elastic demand can be).
fn learn(
    m: &mut PriceMemory,
    states: &[PriceState],
    inputs: &[DcInput],
    ln_rho: &[f64],
    floored: &[bool],
    t: f64,
) {
    let n = m.trust.len();
    let Some((mu0, ln0)) = m.last.take() else {
        return;
    };
    let dmu: Vec<f64> = (0..n)
        .map(|j| {
            if inputs[j].usable {
                states[j].mu - mu0[j]
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = dmu.iter().map(|x| x.abs()).sum();
    for i in 0..n {
        let own = dmu[i].abs();
        if own < 1e-12 || floored[i] {
            continue;
        }
        if total - own > 0.5 * own {
            // Not a clean measurement. If the error did not even halve,
            // demand here is stiffer than assumed whatever the others did:
            // halve the elasticity (double the next step).
            let e_now = ln_rho[i] - ln0[i] + m.last_error[i];
            if m.last_error[i] * e_now > 0.0 && e_now.abs() > 0.5 * m.last_error[i].abs() {
                m.elasticity[i] = (m.elasticity_or(i, 1.0) * 0.5).max(MIN_OWN);
            }
            continue;
        }
        // No response, or one against the move, is as stiff as allowed.
        let observed = -(ln_rho[i] - ln0[i]) / dmu[i] * t;
        m.elasticity[i] = if observed.is_finite() {
            observed.clamp(MIN_OWN, 1.0)
        } else {
            MIN_OWN
        };
    }
}
