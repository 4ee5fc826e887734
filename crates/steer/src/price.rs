//! The price controller: load enters steering as a chemical potential μ per
//! datacenter, moved once per load interval from the utilisations the feeds
//! report, never as a penalty that grows with load (a penalty reacts at
//! once, and with resolvers caching answers every cell flees a hot DC
//! together and then returns together).
//!
//! The fixed point is the entropy-regularised optimal transport of demand
//! onto capacity: a DC under its target has μ = 0 and geography decides; one
//! over it holds the price at which the demand it sheds just fits. Two
//! controllers reach it:
//!
//! - [`Controller::Balance`] (the default): prices are relative, so they are
//!   anchored (the cheapest usable DC has μ = 0); a target that total demand
//!   makes infeasible becomes "fill evenly" (every DC at the global
//!   utilisation, reported as such) instead of every price inflating; each
//!   move is a Newton step `Δμ = ln(ρ/τ) / ε` on the DC's elasticity
//!   `ε = −∂ln ρ/∂μ`, measured from its last move and bounded between
//!   `1/(40T)` and `1/T` (the most elastic demand can be: at that bound the
//!   step is Sinkhorn's), within the step bound; a DC holds its price for the demand
//!   lag (the answers' TTL in load intervals) after a move, so it judges a
//!   move by its whole effect and caching cannot make it swing; and a DC
//!   that comes back (undrain, health up, added) enters at a price no cell
//!   prefers (by the triangle inequality) and ramps its target over the
//!   slow-start window.
//! - [`Controller::Step`]: the first design, `μ ← clamp(μ + clamp(η(ρ − ρ*),
//!   −η, η), 0, μ_max)`, kept so `boltz simulate` can show what it does.

/// Which price loop a zone runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// Anchored, elasticity-scaled, lag-aware, with slow start.
    Balance,
    /// Fixed-gain dual ascent (the first design; for comparison).
    Step,
}

/// The zone's price parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceParams {
    /// Which loop runs.
    pub controller: Controller,
    /// ρ*: the utilisation a DC is held at or below.
    pub target_utilisation: f64,
    /// Balance: the largest move of μ in one step. Step: the gain η and
    /// its bound.
    pub step: f64,
    /// Upper bound of μ.
    pub max: f64,
    /// Load intervals a price holds after a move before it is judged
    /// (Balance): how long answers cached by resolvers keep demand where
    /// older prices sent it.
    pub lag: u32,
    /// Load intervals over which a DC that comes back ramps its target
    /// from a share of it to all of it (Balance; 0 = no ramp).
    pub slow_start: u32,
}

/// One DC as a price step sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DcInput {
    /// Healthy and not drained: a candidate for answers.
    pub usable: bool,
    /// Its capacity (any unit shared by the zone's DCs).
    pub capacity: f64,
    /// Measured (smoothed) utilisation, load over capacity.
    pub utilisation: f64,
}

/// Why a DC's price did what it did in the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PricePhase {
    /// Under its target with μ = 0: geography decides.
    #[default]
    Free,
    /// Within the settled band just under its target, or holding a price
    /// while the effect of the last move arrives.
    Holding,
    /// Over its target: the price rose.
    Raising,
    /// Under its target with μ > 0: the price fell.
    Lowering,
    /// Came back and ramps its target (slow start).
    Ramping,
    /// Not a candidate: the price waits.
    Unusable,
}

/// A DC's price and what the controller remembers about it.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceState {
    /// The price μ ≥ 0.
    pub mu: f64,
    /// What the last step did.
    pub phase: PricePhase,
    /// Intervals into the slow start; `None` when it is over.
    ramp: Option<u32>,
    seen: bool,
    usable_before: bool,
    hold: u32,
    elasticity: f64,
    last_move: Option<(f64, f64)>,
    last_error: Option<f64>,
    trust: f64,
    probe: f64,
}

impl PriceState {
    /// The state of a DC that joins a zone already running: it slow-starts.
    pub fn joining() -> PriceState {
        PriceState {
            seen: true,
            usable_before: false,
            ..PriceState::default()
        }
    }
}

impl Default for PriceState {
    fn default() -> Self {
        PriceState {
            mu: 0.0,
            phase: PricePhase::Free,
            ramp: None,
            seen: false,
            usable_before: false,
            hold: 0,
            elasticity: 0.0,
            last_move: None,
            last_error: None,
            trust: 1.0,
            probe: 1.0,
        }
    }
}

impl PriceState {
    /// The share of its target a ramping DC may take now (1 when not).
    fn ramp_share(&self, p: &PriceParams) -> f64 {
        match self.ramp {
            Some(k) if p.slow_start > 0 => (f64::from(k) + 1.0) / (f64::from(p.slow_start) + 1.0),
            _ => 1.0,
        }
    }
}

/// What one step concluded for the whole zone.
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize)]
pub struct ZoneOutcome {
    /// The utilisation DCs are held at: ρ*, or the global utilisation when
    /// total demand makes ρ* impossible.
    pub target: f64,
    /// Total demand exceeds ρ* of the usable capacity: every DC is filled
    /// evenly instead.
    pub infeasible: bool,
    /// Σ load / Σ capacity over usable DCs.
    pub global_utilisation: f64,
}

/// The settled band: a DC with a price whose utilisation is within this
/// fraction of its target is left alone (no move, so no cell flips). Without
/// it, a DC a hair over its target keeps raising its price by hairs while
/// its neighbours' moves push it back over: the prices creep.
const BAND: f64 = 0.02;
/// The least elasticity assumed, relative to `1/T`: demand far from any
/// other DC hardly moves until μ nears the distance to the next DC.
const MIN_ELASTICITY: f64 = 1.0 / 40.0;
/// Utilisation below this share of the target counts as "no demand" (a
/// logarithm needs a floor).
const FLOOR: f64 = 0.02;
/// A returning DC enters this many T above the price that makes it nobody's
/// best choice.
const ENTRY_MARGIN: f64 = 5.0;

/// One step of every DC's price in a zone. `pair_energy[i * n + j]` is the
/// distance energy between DC `i` and DC `j` (distance / scale), which
/// places a returning DC's entry price. `t` is the zone's temperature.
pub fn step_prices(
    states: &mut [PriceState],
    inputs: &[DcInput],
    pair_energy: &[f64],
    t: f64,
    p: &PriceParams,
) -> ZoneOutcome {
    let outcome = targets(states, inputs, p);
    match p.controller {
        Controller::Step => {
            for (s, d) in states.iter_mut().zip(inputs) {
                let mu = update_price_step(s.mu, d.utilisation, p);
                s.phase = phase_of(s.mu, mu, d.usable);
                s.mu = mu;
            }
        }
        Controller::Balance => {
            enter(states, inputs, pair_energy, t, p);
            for (s, d) in states.iter_mut().zip(inputs) {
                if d.usable {
                    let tau = outcome.target * s.ramp_share(p);
                    balance_one(s, d.utilisation, tau, t, p);
                } else {
                    s.phase = PricePhase::Unusable;
                }
            }
            anchor(states, inputs);
        }
    }
    for (s, d) in states.iter_mut().zip(inputs) {
        s.seen = true;
        s.usable_before = d.usable;
    }
    outcome
}

/// The zone's target: ρ*, or the global utilisation when that is higher
/// (fill evenly). Ramping DCs count with the share of capacity they may take.
fn targets(states: &[PriceState], inputs: &[DcInput], p: &PriceParams) -> ZoneOutcome {
    let (mut load, mut cap, mut ramped) = (0.0, 0.0, 0.0);
    for (s, d) in states.iter().zip(inputs) {
        if d.usable && d.capacity > 0.0 {
            load += finite(d.utilisation) * d.capacity;
            cap += d.capacity;
            ramped += d.capacity * s.ramp_share(p);
        }
    }
    let global = if cap > 0.0 { load / cap } else { 0.0 };
    let needed = if ramped > 0.0 { load / ramped } else { 0.0 };
    let infeasible = needed > p.target_utilisation;
    ZoneOutcome {
        target: if infeasible {
            needed
        } else {
            p.target_utilisation
        },
        infeasible,
        global_utilisation: global,
    }
}

/// DCs that are usable now and were not at the last step (after the first
/// step, so a cold start does not slow-start everything) enter at a price
/// no cell prefers: by the triangle inequality, a client's energy at DC `i`
/// is then at least ENTRY_MARGIN·T above its energy at some usable `j`.
fn enter(
    states: &mut [PriceState],
    inputs: &[DcInput],
    pair_energy: &[f64],
    t: f64,
    p: &PriceParams,
) {
    let n = inputs.len();
    for i in 0..n {
        let coming_back = inputs[i].usable && states[i].seen && !states[i].usable_before;
        if !coming_back {
            continue;
        }
        let cheapest = (0..n)
            .filter(|&j| j != i && inputs[j].usable && !is_entering(&states[j], &inputs[j]))
            .map(|j| pair_energy[i * n + j] + states[j].mu)
            .fold(f64::INFINITY, f64::min);
        let s = &mut states[i];
        s.ramp = (p.slow_start > 0).then_some(0);
        // Its first judgement waits for the demand lag, as after any move.
        s.hold = p.lag;
        s.elasticity = 0.0;
        s.last_move = None;
        s.last_error = None;
        s.trust = 1.0;
        s.probe = 1.0;
        // Alone in the zone: nothing to protect it from, no entry price.
        s.mu = if cheapest.is_finite() {
            (cheapest + ENTRY_MARGIN * t).min(p.max)
        } else {
            0.0
        };
        s.phase = PricePhase::Ramping;
    }
}

fn is_entering(s: &PriceState, d: &DcInput) -> bool {
    d.usable && s.seen && !s.usable_before
}

/// One DC's move toward its target `tau`.
fn balance_one(s: &mut PriceState, rho: f64, tau: f64, t: f64, p: &PriceParams) {
    let rho = finite(rho);
    if let Some(k) = s.ramp {
        let next = k + 1;
        s.ramp = (next < p.slow_start).then_some(next);
    }
    let ramping = s.ramp.is_some();
    if s.mu <= 0.0 && rho <= tau {
        s.phase = PricePhase::Free;
        s.last_move = None;
        s.last_error = None;
        s.trust = 1.0;
        s.elasticity = 0.0;
        s.hold = 0;
        return;
    }
    if s.hold > 0 {
        s.hold -= 1;
        s.phase = if ramping {
            PricePhase::Ramping
        } else {
            PricePhase::Holding
        };
        return;
    }
    let ratio = rho.max(FLOOR * tau) / tau;
    if (ratio - 1.0).abs() <= BAND {
        s.phase = if ramping {
            PricePhase::Ramping
        } else {
            PricePhase::Holding
        };
        return;
    }
    let e = ratio.ln();
    let max_el = 1.0 / t;
    let at_floor = rho < FLOOR * tau;
    if let Some((mu0, ln0)) = s.last_move {
        let dmu = s.mu - mu0;
        let dln = e + tau.ln() - ln0;
        if dmu.abs() > 1e-12 && !at_floor {
            // No response (or one against the move, from other DCs moving
            // at once) means demand here is as inelastic as it gets.
            let observed = -dln / dmu;
            s.elasticity = if observed.is_finite() {
                observed.clamp(max_el * MIN_ELASTICITY, max_el)
            } else {
                max_el * MIN_ELASTICITY
            };
        }
    }
    // Before any move has been measured, assume the most elastic demand
    // (the Sinkhorn step): it cannot overshoot alone, whereas assuming
    // inelastic demand sends every DC's whole region elsewhere at once
    // where demand is dense. The next step measures and goes faster if
    // demand turns out stiffer.
    let el = if s.elasticity > 0.0 {
        s.elasticity
    } else {
        max_el
    };
    // A trust region: a move whose error changed sign overshot (other DCs
    // moved at once, or the elasticity was misjudged), so the next ones
    // shrink; moves that keep the sign earn it back.
    if let Some(last) = s.last_error {
        s.trust = if (last > 0.0) != (e > 0.0) {
            (s.trust * 0.5).max(1.0 / 16.0)
        } else {
            (s.trust * 1.5).min(1.0)
        };
    }
    s.last_error = Some(e);
    let mut dmu = s.trust * e / el;
    if at_floor && e < 0.0 {
        // No demand at all tells nothing about elasticity: probe down in
        // growing steps until some arrives.
        dmu *= s.probe;
        s.probe = (s.probe * 2.0).min(1.0 / MIN_ELASTICITY);
    } else {
        s.probe = 1.0;
    }
    let dmu = dmu.clamp(-p.step, p.step);
    let before = s.mu;
    s.mu = (s.mu + dmu).clamp(0.0, p.max);
    if s.mu < 1e-9 {
        s.mu = 0.0;
    }
    s.last_move = Some((before, rho.max(FLOOR * tau).ln()));
    s.hold = p.lag.saturating_sub(1);
    s.phase = if ramping {
        PricePhase::Ramping
    } else if s.mu > before {
        PricePhase::Raising
    } else {
        PricePhase::Lowering
    };
}

/// Prices are relative: a constant added to every usable DC's μ changes no
/// probability. Keep the cheapest usable DC at 0 so no price inflates.
fn anchor(states: &mut [PriceState], inputs: &[DcInput]) {
    let least = states
        .iter()
        .zip(inputs)
        .filter(|(_, d)| d.usable)
        .map(|(s, _)| s.mu)
        .fold(f64::INFINITY, f64::min);
    if least.is_finite() && least > 0.0 {
        for (s, d) in states.iter_mut().zip(inputs) {
            if d.usable {
                s.mu -= least;
                if let Some((mu0, _)) = s.last_move.as_mut() {
                    *mu0 -= least;
                }
            }
        }
    }
}

fn phase_of(before: f64, after: f64, usable: bool) -> PricePhase {
    if !usable {
        PricePhase::Unusable
    } else if after > before {
        PricePhase::Raising
    } else if after < before {
        PricePhase::Lowering
    } else if after > 0.0 {
        PricePhase::Holding
    } else {
        PricePhase::Free
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x.max(0.0)
    } else {
        0.0
    }
}

/// One fixed-gain dual-ascent step ([`Controller::Step`]).
fn update_price_step(mu: f64, utilisation: f64, p: &PriceParams) -> f64 {
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

#[cfg(test)]
mod tests;
