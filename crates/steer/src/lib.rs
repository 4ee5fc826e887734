//! boltz-steer: the pure maths between "where is the client" and "which
//! datacenters answer". No I/O, no clocks, no locks: health, load and prices
//! arrive as plain numbers from a snapshot, so the same code runs on the query
//! path, in `boltz explain` and in tests.
//!
//! For every usable candidate DC `i` the energy is
//! `E_i = distance_km / distance_scale_km + μ_i` and its Boltzmann weight is
//! `w_i · exp(−E_i / T)`. Everything is kept in the log domain (`logit_i =
//! ln w_i − E_i / T`) so a very cold system (tiny `T`) cannot underflow every
//! weight to zero.
//!
//! The draw uses the Gumbel-max trick with a hash instead of a random number:
//! DC `i` gets the race key `ln(−ln u_i) − logit_i`, where `u_i` is a uniform
//! number derived from (cell, name, epoch, DC). Sorting by key gives a sample
//! from the Boltzmann distribution (the first DC) and successive sampling
//! without replacement (the next ones). Because each DC's key depends only on
//! its own logit and its own hash, this is weighted rendezvous hashing: a
//! small change of one DC's probability moves only the cells whose race it
//! just wins or loses.
//!
//! This file holds the logit and the draw; beside it, `temperature` (T from
//! staleness of the load feeds), `price` (the controller of μ), `topn` (the draw's partial
//! sort), `fastmath` (distances and logarithms) and `hash` (seeds and ids).

#![warn(missing_docs)]

pub mod fastmath;
pub mod hash;
pub mod price;
mod temperature;
mod topn;

pub use fastmath::UnitVec;
pub use hash::{cell_hash, hash_bytes, mix};
pub use price::{
    admit, step_prices, Controller, DcInput, DemandMap, PriceMemory, PriceParams, PricePhase,
    PriceState, ZoneOutcome,
};
pub use temperature::Temperature;
pub use topn::{TopN, MAX_ANSWERS};

/// A point on the Earth in degrees.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatLon {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Great-circle distance in kilometres (haversine on the GRS80 mean radius)
/// by the `geo` crate: the reference that [`UnitVec::distance_km`], used on
/// the query path, is tested against.
#[cfg(test)]
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    use geo::{Distance, Haversine, Point};
    Haversine.distance(Point::new(a.lon, a.lat), Point::new(b.lon, b.lat)) / 1000.0
}

/// One candidate DC as the policy sees it at query time.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// Distance from the client, 0 when the client's location is unknown and
    /// the zone asked for a weight-only choice.
    pub distance_km: f64,
    /// Boltzmann degeneracy: equal energies split by weight.
    pub weight: f64,
    /// The DC's current price (chemical potential), ≥ 0.
    pub mu: f64,
    /// A stable hash of the DC's name: the DC's identity in the draw.
    pub id: u64,
}

impl Candidate {
    /// Distance over `scale_km` (0 when the client is not located).
    pub fn distance_energy(&self, scale_km: f64) -> f64 {
        self.distance_km / scale_km
    }

    /// `ln w − (E_d + μ)/T`.
    pub fn logit(&self, scale_km: f64, t: f64) -> f64 {
        logit(
            self.weight.ln(),
            self.distance_km,
            self.mu,
            &Scales::new(scale_km, t),
        )
    }
}

/// A uniform number in the open interval (0, 1) from 53 bits of a hash.
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// `ln(−ln u)` for the DC `id` in the draw `seed`: minus a standard Gumbel
/// variate, derived from a hash instead of a random number generator.
#[inline]
pub fn gumbel(seed: u64, id: u64) -> f64 {
    fastmath::ln(-fastmath::ln(unit(mix(seed, id))))
}

/// An upper bound of the spread of [`gumbel`]: u ∈ [2⁻⁵⁴, 1 − 2⁻⁵⁴] gives
/// ln(−ln u) ∈ [−37.5, 3.7]. A candidate whose logit trails another's by more
/// than this always loses the race to it.
pub const GUMBEL_SPAN: f64 = 41.5;

/// The reciprocals of the distance scale and the temperature: the logit
/// multiplies by them instead of dividing per candidate.
#[derive(Clone, Copy, Debug)]
pub struct Scales {
    inv_scale_km: f64,
    inv_t: f64,
}

impl Scales {
    /// The reciprocals of a distance scale in km and a temperature.
    pub fn new(scale_km: f64, t: f64) -> Scales {
        Scales {
            inv_scale_km: 1.0 / scale_km,
            inv_t: 1.0 / t,
        }
    }
}

/// `ln w − (E_d + μ)/T` from its parts (what [`Candidate::logit`] computes).
#[inline]
pub fn logit(ln_weight: f64, distance_km: f64, mu: f64, s: &Scales) -> f64 {
    ln_weight - (distance_km * s.inv_scale_km + mu) * s.inv_t
}

/// The race key of a candidate for a draw seed: lower wins.
pub fn race_key(seed: u64, c: &Candidate, scale_km: f64, t: f64) -> f64 {
    gumbel(seed, c.id) - c.logit(scale_km, t)
}

/// The seed of one draw: every address of a cell asking for one name in one
/// epoch gets the same seed, hence the same answer.
pub fn draw_seed(cell: u64, name: u64, epoch: u64) -> u64 {
    mix(mix(cell, name), epoch)
}

/// Orders `cands` by race key and writes the first `out.len()` (at most
/// [`MAX_ANSWERS`]) indices into `out`; returns how many were written.
pub fn draw_into(
    seed: u64,
    cands: &[Candidate],
    scale_km: f64,
    t: f64,
    out: &mut [usize],
) -> usize {
    let mut top = TopN::new(out.len());
    for (i, c) in cands.iter().enumerate() {
        top.offer(race_key(seed, c, scale_km, t), i);
    }
    let chosen = top.as_slice();
    out[..chosen.len()].copy_from_slice(chosen);
    chosen.len()
}

/// Normalised probabilities of each candidate being drawn first, in the order
/// of `cands` (the reference the tests hold the draw against).
#[cfg(test)]
pub fn probabilities(cands: &[Candidate], scale_km: f64, t: f64) -> Vec<f64> {
    let logits: Vec<f64> = cands.iter().map(|c| c.logit(scale_km, t)).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let z: f64 = exps.iter().sum();
    exps.iter().map(|e| e / z).collect()
}

#[cfg(test)]
mod tests;
