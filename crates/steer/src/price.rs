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

/// What the zone's controller has learned from its own moves: each DC's
/// elasticity and trust, and the last move it is judging. Zone-wide,
/// because whether a move measured its own DC depends on the others'.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceMemory {
    n: usize,
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
    fn fit(&mut self, n: usize) {
        if self.n != n || self.trust.len() != n {
            *self = PriceMemory {
                n,
                elasticity: vec![0.0; n],
                trust: vec![1.0; n],
                last_error: vec![0.0; n],
                last: None,
                hold: 0,
            };
        }
    }

    /// Drops what was learned about DC `i`.
    fn forget(&mut self, i: usize) {
        self.elasticity[i] = 0.0;
        self.trust[i] = 1.0;
        self.last_error[i] = 0.0;
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
/// fraction of its target counts as on target (no move of its own, so no
/// cell flips). Without it, a DC a hair over its target keeps raising its
/// price by hairs while its neighbours' moves push it back over: the prices
/// creep.
const BAND: f64 = 0.02;
/// The stiffest own response the Jacobian may claim, relative to `1/T`:
/// demand far from any other DC hardly moves until μ nears the distance to
/// the next DC.
const MIN_OWN: f64 = 1.0 / 40.0;
/// The trust factor shrinks after overshoots to at least this.
const MIN_TRUST: f64 = 1.0 / 16.0;
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
    memory: &mut PriceMemory,
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
            memory.fit(inputs.len());
            let entering = enter(states, inputs, pair_energy, t, p);
            balance(states, memory, inputs, &entering, outcome.target, t, p);
            let shift = anchor(states, inputs);
            // The move being judged is kept in the anchored frame.
            if let Some((mu, _)) = memory.last.as_mut() {
                for (m, d) in mu.iter_mut().zip(inputs) {
                    if d.usable {
                        *m -= shift;
                    }
                }
            }
        }
    }
    for (s, d) in states.iter_mut().zip(inputs) {
        s.seen = true;
        s.usable_before = d.usable;
    }
    outcome
}

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
/// Returns which DCs entered.
fn enter(
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

/// One quasi-Newton move of the priced DCs' prices (or a hold).
fn balance(
    states: &mut [PriceState],
    m: &mut PriceMemory,
    inputs: &[DcInput],
    entering: &[bool],
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
        let el = if m.elasticity[i] > 0.0 {
            m.elasticity[i]
        } else {
            pooled
        };
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
    let n = m.n;
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
                let el = if m.elasticity[i] > 0.0 {
                    m.elasticity[i]
                } else {
                    1.0
                };
                m.elasticity[i] = (el * 0.5).max(MIN_OWN);
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
