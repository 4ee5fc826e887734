//! Model-predictive prices: with a map of where demand comes from (per
//! cell, its request rate and its distance energy to every DC), the prices
//! that fit capacity can be computed instead of groped for. They are the
//! dual of the entropy-regularised transport of the map's demand onto the
//! DCs' targets: minimise
//!
//! `D(μ) = T Σ_c r_c ln Σ_i w_i e^{−(E_ci + μ_i)/T} + Σ_i μ_i b_i`, `μ ≥ 0`,
//!
//! whose gradient is `b_i − L̂_i(μ)` (the predicted load of DC `i` against
//! its budget `b_i`): at the minimum every priced DC takes exactly its
//! budget and every free one at most. `D` is convex, so a projected Newton
//! iteration (the Hessian is the DCs' covariance of the cells' choice
//! probabilities over T) finds it in a few passes over the map.
//!
//! The map is only a model: its cells may miss demand, resolvers cache, a
//! feed's rate is not a DC's utilisation. So the measured loads calibrate
//! it: a DC whose measured load is `k` times the map's prediction at the
//! current prices has its budget divided by `k` (the map's share of what
//! it really carries), and the solve fits that. A DC whose error the map
//! cannot explain keeps being corrected by the next measurement.

use super::{finite, DcInput};

/// Where demand comes from, for one zone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemandMap {
    /// Per cell: its rate (requests/s, the unit of the DCs' capacity).
    pub rate: Vec<f64>,
    /// Per cell, row-major over the zone's DCs: distance energy
    /// (distance / scale).
    pub energy: Vec<f64>,
    /// Per DC: `ln weight`.
    pub ln_weight: Vec<f64>,
}

/// The calibration factor's bounds: a map this far off says little.
const K_MIN: f64 = 0.2;
const K_MAX: f64 = 5.0;
/// Newton passes at most; each is one pass over the map.
const PASSES: usize = 60;

impl DemandMap {
    fn cells(&self) -> usize {
        self.rate.len()
    }

    /// Whether the map fits `n` DCs and carries any demand.
    pub fn usable_for(&self, n: usize) -> bool {
        n > 0
            && self.ln_weight.len() == n
            && self.energy.len() == self.rate.len() * n
            && self.rate.iter().any(|r| *r > 0.0)
    }

    /// Predicted load per DC at prices `mu` (over the `usable` DCs), and,
    /// with `hessian`, `Σ_c r_c (δ_ij p_ci − p_ci p_cj)` (times T it is the
    /// Hessian of D).
    fn predict(
        &self,
        mu: &[f64],
        usable: &[bool],
        t: f64,
        mut hessian: Option<&mut Vec<f64>>,
    ) -> (Vec<f64>, f64) {
        let n = mu.len();
        let mut load = vec![0.0; n];
        let mut log_partition = 0.0;
        if let Some(h) = hessian.as_deref_mut() {
            h.clear();
            h.resize(n * n, 0.0);
        }
        let mut logit = vec![f64::NEG_INFINITY; n];
        let mut p = vec![0.0; n];
        for c in 0..self.cells() {
            let r = self.rate[c];
            if r <= 0.0 {
                continue;
            }
            let row = &self.energy[c * n..(c + 1) * n];
            let mut best = f64::NEG_INFINITY;
            for i in 0..n {
                logit[i] = if usable[i] {
                    self.ln_weight[i] - (row[i] + mu[i]) / t
                } else {
                    f64::NEG_INFINITY
                };
                best = best.max(logit[i]);
            }
            if !best.is_finite() {
                continue;
            }
            let mut z = 0.0;
            for i in 0..n {
                p[i] = (logit[i] - best).exp();
                z += p[i];
            }
            log_partition += r * (best + z.ln());
            for i in 0..n {
                p[i] /= z;
                load[i] += r * p[i];
            }
            if let Some(h) = hessian.as_deref_mut() {
                for i in 0..n {
                    if p[i] == 0.0 {
                        continue;
                    }
                    h[i * n + i] += r * p[i];
                    for j in 0..n {
                        h[i * n + j] -= r * p[i] * p[j];
                    }
                }
            }
        }
        (load, log_partition)
    }
}

/// The prices at which the map, calibrated by the measured loads, puts
/// every usable DC at or under `tau[i]` of its capacity, starting from
/// `mu`; anchored (the cheapest usable DC at 0). `None` when the map does
/// not fit the zone or carries no demand.
pub(super) fn solve(
    map: &DemandMap,
    inputs: &[DcInput],
    mu: &[f64],
    tau: &[f64],
    t: f64,
) -> Option<Vec<f64>> {
    let n = inputs.len();
    if !map.usable_for(n) || t.is_nan() || t <= 0.0 {
        return None;
    }
    let usable: Vec<bool> = inputs.iter().map(|d| d.usable).collect();
    // Calibration at the prices the measurements were taken at.
    let (now, _) = map.predict(mu, &usable, t, None);
    let budget: Vec<f64> = (0..n)
        .map(|i| {
            let d = &inputs[i];
            let measured = finite(d.utilisation) * d.capacity;
            let k = if now[i] > 1e-9 && measured > 0.0 {
                (measured / now[i]).clamp(K_MIN, K_MAX)
            } else {
                1.0
            };
            tau[i] * d.capacity / k
        })
        .collect();
    let dual = |m: &[f64]| {
        let (_, lp) = map.predict(m, &usable, t, None);
        t * lp
            + (0..n)
                .filter(|&i| usable[i])
                .map(|i| m[i] * budget[i])
                .sum::<f64>()
    };
    let mut x: Vec<f64> = mu.iter().map(|m| m.max(0.0)).collect();
    let mut h = Vec::new();
    for _ in 0..PASSES {
        let (load, lp) = map.predict(&x, &usable, t, Some(&mut h));
        let value = t * lp
            + (0..n)
                .filter(|&i| usable[i])
                .map(|i| x[i] * budget[i])
                .sum::<f64>();
        let grad: Vec<f64> = (0..n).map(|i| budget[i] - load[i]).collect();
        // Free: usable, and not held at 0 by a gradient that would push it
        // below.
        let free: Vec<usize> = (0..n)
            .filter(|&i| usable[i] && (x[i] > 0.0 || grad[i] < 0.0))
            .collect();
        if free
            .iter()
            .all(|&i| grad[i].abs() <= 1e-6 * budget[i].max(1e-9))
        {
            break;
        }
        // Newton direction on the free DCs: (H/T) d = −g, H ridge-lifted
        // along the all-ones direction it cannot see.
        let m = free.len();
        let mut a = vec![0.0; m * m];
        let mut b = vec![0.0; m];
        let trace: f64 = free.iter().map(|&i| h[i * n + i]).sum::<f64>().max(1e-12);
        for (r, &i) in free.iter().enumerate() {
            for (c, &j) in free.iter().enumerate() {
                a[r * m + c] = h[i * n + j] / t;
            }
            a[r * m + r] += 1e-9 * trace / t;
            b[r] = -grad[i];
        }
        // Where the Hessian says nothing (demand so stiff at this T that
        // almost no cell is on the fence) Newton has no step: then the
        // dual's coordinate step, T ln(L̂/b) (Sinkhorn's), which always
        // descends.
        let sinkhorn: Vec<f64> = free
            .iter()
            .map(|&i| {
                let ratio = load[i].max(1e-12) / budget[i].max(1e-12);
                (t * ratio.ln()).clamp(-1.0, 1.0)
            })
            .collect();
        let newton = gauss(&mut a, &mut b, m);
        let mut moved = false;
        for step in newton.iter().chain(std::iter::once(&sinkhorn)) {
            // Backtracking on D along the projected step.
            let mut alpha = 1.0;
            for _ in 0..30 {
                let mut y = x.clone();
                for (r, &i) in free.iter().enumerate() {
                    y[i] = (x[i] + alpha * step[r]).max(0.0);
                }
                if dual(&y) < value {
                    x = y;
                    moved = true;
                    break;
                }
                alpha *= 0.5;
            }
            if moved {
                break;
            }
        }
        if !moved {
            break;
        }
    }
    let least = (0..n)
        .filter(|&i| usable[i])
        .map(|i| x[i])
        .fold(f64::INFINITY, f64::min);
    if least.is_finite() && least > 0.0 {
        for i in (0..n).filter(|&i| usable[i]) {
            x[i] -= least;
        }
    }
    Some(x)
}

/// Solves `a · x = b` (`m × m`, row-major) by Gaussian elimination with
/// partial pivoting; `None` when singular. Small systems only (one row
/// per priced DC): a linear-algebra crate would be more than the problem.
fn gauss(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    for col in 0..m {
        let pivot =
            (col..m).max_by(|&r, &s| a[r * m + col].abs().total_cmp(&a[s * m + col].abs()))?;
        if a[pivot * m + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..m {
                a.swap(pivot * m + k, col * m + k);
            }
            b.swap(pivot, col);
        }
        for r in col + 1..m {
            let f = a[r * m + col] / a[col * m + col];
            for k in col..m {
                a[r * m + k] -= f * a[col * m + k];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|k| a[r * m + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * m + r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests;
