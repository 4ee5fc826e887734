//! Steering policy: the pure maths between "where is the client" and "which
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

pub mod fastmath;
pub mod hash;
pub mod price;

pub use fastmath::UnitVec;
pub use hash::{cell_hash, hash_bytes, mix};
pub use price::{update_price, PriceParams};

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

/// How the zone sets its temperature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Temperature {
    Fixed(f64),
    /// Linear in global utilisation between `min` (idle) and `max` (at or
    /// above capacity).
    Auto {
        min: f64,
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

/// Most answers a steered name may ask for.
pub const MAX_ANSWERS: usize = 8;

/// The `n` lowest race keys seen so far, in order, without allocating:
/// candidates are offered one by one as they are scored.
#[derive(Clone, Copy, Debug)]
pub struct TopN {
    keys: [f64; MAX_ANSWERS],
    idx: [usize; MAX_ANSWERS],
    want: usize,
    len: usize,
}

impl TopN {
    pub fn new(want: usize) -> TopN {
        TopN {
            keys: [f64::INFINITY; MAX_ANSWERS],
            idx: [0; MAX_ANSWERS],
            want: want.min(MAX_ANSWERS),
            len: 0,
        }
    }

    /// Offers candidate `i` with race key `key`.
    #[inline]
    pub fn offer(&mut self, key: f64, i: usize) {
        if self.want == 0 {
            return;
        }
        // Partial insertion sort: `want` is 1..=8, so this beats sorting.
        let mut pos = if self.len < self.want {
            self.len += 1;
            self.len - 1
        } else if key < self.keys[self.want - 1] {
            self.want - 1
        } else {
            return;
        };
        while pos > 0 && self.keys[pos - 1] > key {
            self.keys[pos] = self.keys[pos - 1];
            self.idx[pos] = self.idx[pos - 1];
            pos -= 1;
        }
        self.keys[pos] = key;
        self.idx[pos] = i;
    }

    /// The chosen indices, best first.
    pub fn as_slice(&self) -> &[usize] {
        &self.idx[..self.len]
    }

    /// The worst key kept, once `want` keys were offered (before that,
    /// nothing may be ruled out).
    pub fn worst_key(&self) -> Option<f64> {
        (self.want > 0 && self.len == self.want).then(|| self.keys[self.want - 1])
    }
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
mod tests {
    use super::*;

    fn cand(d: f64, w: f64, mu: f64, id: u64) -> Candidate {
        Candidate {
            distance_km: d,
            weight: w,
            mu,
            id: hash_bytes(&id.to_le_bytes()),
        }
    }

    #[test]
    fn distance_frankfurt_new_york() {
        let fra = LatLon {
            lat: 50.11,
            lon: 8.68,
        };
        let nyc = LatLon {
            lat: 40.71,
            lon: -74.01,
        };
        let d = distance_km(fra, nyc);
        assert!((6150.0..6250.0).contains(&d), "{d}");
    }

    #[test]
    fn auto_temperature_rises_with_utilisation() {
        let t = Temperature::Auto {
            min: 0.05,
            max: 1.0,
        };
        assert!((t.at(0.0) - 0.05).abs() < 1e-12);
        assert!((t.at(0.5) - 0.525).abs() < 1e-12);
        assert!((t.at(7.0) - 1.0).abs() < 1e-12);
        assert!((t.at(f64::NAN) - 1.0).abs() < 1e-12);
        assert_eq!(Temperature::Fixed(0.0).at(0.3), MIN_TEMPERATURE);
    }

    #[test]
    fn cold_system_is_greedy_and_never_underflows() {
        let cands = [
            cand(9000.0, 1.0, 0.0, 1),
            cand(300.0, 1.0, 0.0, 2),
            cand(6000.0, 1.0, 0.0, 3),
        ];
        let p = probabilities(&cands, 2000.0, MIN_TEMPERATURE);
        assert!((p[1] - 1.0).abs() < 1e-12);
        assert!(p.iter().all(|x| x.is_finite()));
        for seed in 0..1000u64 {
            let mut out = [0usize; 1];
            assert_eq!(
                draw_into(seed, &cands, 2000.0, MIN_TEMPERATURE, &mut out),
                1
            );
            assert_eq!(out[0], 1);
        }
    }

    #[test]
    fn equal_energies_split_by_weight() {
        let cands = [cand(100.0, 1.0, 0.0, 1), cand(100.0, 3.0, 0.0, 2)];
        let p = probabilities(&cands, 2000.0, 0.5);
        assert!((p[1] - 0.75).abs() < 1e-12);
        let n = 40_000u64;
        let mut wins = 0;
        for seed in 0..n {
            let mut out = [0usize; 1];
            draw_into(mix(seed, 99), &cands, 2000.0, 0.5, &mut out);
            wins += (out[0] == 1) as u64;
        }
        let share = wins as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.015, "{share}");
    }

    #[test]
    fn draws_follow_the_boltzmann_probabilities() {
        let cands = [
            cand(500.0, 1.0, 0.0, 1),
            cand(1500.0, 1.0, 0.2, 2),
            cand(2500.0, 2.0, 0.0, 3),
        ];
        let t = 0.7;
        let p = probabilities(&cands, 2000.0, t);
        let n = 60_000u64;
        let mut counts = [0u64; 3];
        for seed in 0..n {
            let mut out = [0usize; 1];
            draw_into(mix(seed, 7), &cands, 2000.0, t, &mut out);
            counts[out[0]] += 1;
        }
        for i in 0..3 {
            let share = counts[i] as f64 / n as f64;
            assert!((share - p[i]).abs() < 0.015, "dc {i}: {share} vs {}", p[i]);
        }
    }

    #[test]
    fn multiple_answers_are_distinct_and_start_with_the_first_draw() {
        let cands: Vec<Candidate> = (0..6)
            .map(|i| cand(100.0 * i as f64, 1.0, 0.0, i))
            .collect();
        for seed in 0..500u64 {
            let mut one = [0usize; 1];
            draw_into(seed, &cands, 2000.0, 0.3, &mut one);
            let mut three = [0usize; 3];
            assert_eq!(draw_into(seed, &cands, 2000.0, 0.3, &mut three), 3);
            assert_eq!(three[0], one[0]);
            assert!(three[0] != three[1] && three[1] != three[2] && three[0] != three[2]);
        }
        let mut many = [0usize; 8];
        assert_eq!(draw_into(1, &cands[..2], 2000.0, 0.3, &mut many), 2);
    }

    #[test]
    fn small_price_change_moves_few_cells() {
        let base = [
            cand(800.0, 1.0, 0.0, 1),
            cand(900.0, 1.0, 0.0, 2),
            cand(1000.0, 1.0, 0.0, 3),
        ];
        let mut bumped = base;
        bumped[0].mu = 0.02;
        let t = 0.5;
        let (p0, p1) = (
            probabilities(&base, 2000.0, t),
            probabilities(&bumped, 2000.0, t),
        );
        let n = 20_000u64;
        let mut moved = 0u64;
        for cell in 0..n {
            let seed = draw_seed(cell, 5, 0);
            let (mut a, mut b) = ([0usize; 1], [0usize; 1]);
            draw_into(seed, &base, 2000.0, t, &mut a);
            draw_into(seed, &bumped, 2000.0, t, &mut b);
            if a != b {
                moved += 1;
                // Only cells leaving the DC whose price rose may move.
                assert_eq!(a[0], 0);
            }
        }
        let expected = p0[0] - p1[0];
        let frac = moved as f64 / n as f64;
        assert!(
            (frac - expected).abs() < 0.01,
            "moved {frac}, expected {expected}"
        );
    }
}
