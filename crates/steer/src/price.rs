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
//! - [`Controller::Balance`] (the default):
//!   - *Anchored.* Prices are relative, so the cheapest usable DC has
//!     μ = 0.
//!   - *Infeasible targets.* A target that total demand makes infeasible
//!     becomes "fill evenly" (every DC at the global utilisation, reported
//!     as such) instead of every price inflating.
//!   - *Newton moves on learned elasticity.* Each priced DC moves by the
//!     Newton step `Δμ = ln(ρ/τ) / ε`. `ε = −∂ln ρ/∂μ` starts at `1/T`,
//!     the most elastic demand can be, which makes the first step
//!     Sinkhorn's (it never overshoots alone). It is then measured from
//!     the DC's own moves, but only from *clean* moves, where the other
//!     DCs together moved less than half as much. Otherwise their shed or
//!     won clients are in the measurement: two neighbours raising together
//!     would each take the other's shed clients for stiff demand and jump.
//!     When a move is not clean and did not even halve the error, ε is
//!     halved (stiffer than assumed, whatever the others did). A DC that
//!     has measured nothing yet starts from the geometric mean of what the
//!     zone's other DCs measured: how stiff demand is depends on the
//!     geography and T, which they share. ε stays
//!     between `1/(40T)` and `1/T`, and a step stays within `price_step`.
//!   - *Settled band.* Within ±2 % of its target a DC holds.
//!   - *Trust.* A DC's trust factor halves after a move that overshot (its
//!     error changed sign) and recovers by half on moves that keep the
//!     sign. A DC on target keeps it, which is what stops a metro whose
//!     clients flip together from see-sawing between two DCs.
//!   - *Fresh readings.* A step without any new reading holds: it would
//!     judge a move by a reading taken before it.
//!   - *Lag.* After a move, the prices hold for the demand lag (the
//!     answers' TTL in load intervals), so a move is judged by its whole
//!     effect and caching cannot make it swing.
//!   - *Slow start.* A DC that comes back (undrain, health up, added)
//!     enters at a price no cell prefers: the triangle inequality gives
//!     it, and [`admit`] sets it the moment the DC comes back, before any
//!     query sees it. Its target then ramps over the slow-start window,
//!     while it probes down in growing steps until demand arrives.
//! - [`Controller::Step`]: the first design, `μ ← clamp(μ + clamp(η(ρ − ρ*),
//!   −η, η), 0, μ_max)`, kept so `boltz simulate` can show what it does.
//!
//! This file holds the types and the zone step (targets, anchoring);
//! beside it `balance` (the move and what it learns), `entry` (slow start)
//! and `step` (the first design).

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
    /// A reading arrived since the last step. Steps without any fresh
    /// reading hold (they would judge a move by a reading taken before it),
    /// and the demand lag counts readings, not ticks: so two DNS nodes fed
    /// the same readings compute the same prices whatever their clocks do.
    pub fresh: bool,
}

/// Why a DC's price did what it did in the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PricePhase {
    /// Under its target with μ = 0: geography decides.
    #[default]
    Free,
    /// Within the settled band around its target, or holding a price while
    /// the effect of the last move arrives.
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

/// A DC's price and its slow start.
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
    /// Grows while the DC has no demand at all and its price falls.
    probe: f64,
}

impl Default for PriceState {
    fn default() -> Self {
        PriceState {
            mu: 0.0,
            phase: PricePhase::Free,
            ramp: None,
            seen: false,
            usable_before: false,
            probe: 1.0,
        }
    }
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

/// One step of every DC's price in a zone. `pair_energy[i * n + j]` is the
/// distance energy between DC `i` and DC `j` (distance / scale), which
/// places a returning DC's entry price. `t` is the zone's temperature.
/// With `demand` (where the zone's demand comes from), the `balance` move
/// is model-predictive ([`DemandMap`]).
pub fn step_prices(
    states: &mut [PriceState],
    memory: &mut PriceMemory,
    inputs: &[DcInput],
    pair_energy: &[f64],
    demand: Option<&DemandMap>,
    t: f64,
    p: &PriceParams,
) -> ZoneOutcome {
    let outcome = targets(states, inputs, p);
    match p.controller {
        Controller::Step => {
            for (s, d) in states.iter_mut().zip(inputs) {
                let mu = step::update_price_step(s.mu, d.utilisation, p);
                s.phase = phase_of(s.mu, mu, d.usable);
                s.mu = mu;
            }
        }
        Controller::Balance => {
            memory.fit(inputs.len());
            let entering = entry::enter(states, inputs, pair_energy, t, p);
            balance::balance(
                states,
                memory,
                inputs,
                &entering,
                demand,
                outcome.target,
                t,
                p,
            );
            let shift = anchor(states, inputs);
            memory.anchored(inputs, shift);
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

/// Prices are relative: a constant added to every usable DC's μ changes no
/// probability. Keep the cheapest usable DC at 0 so no price inflates.
/// Returns the constant taken off.
fn anchor(states: &mut [PriceState], inputs: &[DcInput]) -> f64 {
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
            }
        }
        least
    } else {
        0.0
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

pub(super) fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x.max(0.0)
    } else {
        0.0
    }
}

mod balance;
mod entry;
mod predict;
mod step;

pub use balance::PriceMemory;
pub use entry::admit;
pub use predict::DemandMap;

#[cfg(test)]
mod tests;
