//! The walk `ring-hash` and `maglev` share: from the key's place in the
//! ring or table, the first backend that is eligible, not thinned by slow
//! start and, with bounded loads (Mirrokni et al.; Envoy's
//! `hash_balance_factor`), not over `c` times the average load. Thinning
//! and the bound decide per (key, backend), so a key stays where it is
//! while nothing changes; a pick that finds nobody falls back to the key's
//! first eligible backend, then to a weighted draw.

use boltz_core::hash::fmix64;

use super::random::{draw, unit_of};
use super::{maglev, ring, Algorithm, Picker, View};

/// The in-flight count a backend may reach with bounded loads `c`:
/// `c` times the average over the eligible backends, counting this
/// request, rounded up.
fn load_cap(c: f64, v: &View<'_>) -> f64 {
    let load: u64 =
        v.w.iter()
            .zip(v.backends)
            .filter(|(&x, _)| x > 0.0)
            .map(|(_, b)| u64::from(b.in_flight()))
            .sum();
    (c.max(1.0) * (load + 1) as f64 / v.count as f64).ceil()
}

impl Picker {
    /// Ring-hash and maglev: walk from the key's place to the first
    /// backend that is eligible, not thinned by slow start and (with
    /// bounded loads) not over its bound.
    pub(super) fn consistent(&self, mut v: View<'_>, hash: u64) -> Option<usize> {
        let cap = self.opts.bounded_load.map(|c| load_cap(c, &v));
        let walked = if self.algorithm == Algorithm::RingHash {
            self.walk(ring::order(&self.ring, hash), &mut v, hash, cap)
        } else {
            self.walk(maglev::order(&self.table, hash), &mut v, hash, cap)
        };
        match walked {
            Ok(i) => Some(i),
            // Everyone was thinned or over the bound (racy in-flight
            // reads): the key's own eligible backend beats refusing.
            Err(Some(i)) => Some(i),
            Err(None) => {
                // No structure (e.g. every weight was 0 when it was built)
                // or the eligible backends are not in it: a weighted draw.
                for x in v.w.iter_mut() {
                    *x = x.abs();
                }
                draw(v.w, v.total, None)
            }
        }
    }

    /// Visits backends in `order` until one takes the key; `Err` carries
    /// the first eligible one met, if any.
    fn walk(
        &self,
        order: impl Iterator<Item = usize>,
        v: &mut View<'_>,
        hash: u64,
        cap: Option<f64>,
    ) -> Result<usize, Option<usize>> {
        let mut first = None;
        let mut rejected = 0;
        for i in order {
            let Some(&x) = v.w.get(i) else { continue };
            if x <= 0.0 {
                continue;
            }
            let b = &v.backends[i];
            let full = b.weight();
            // Thinning by (key, backend) rather than at random keeps each
            // key's choice stable, and a key admitted early in the ramp
            // stays admitted as the ramp rises.
            let thinned = x < full && unit_of(fmix64(hash ^ self.key_hash[i])) * full >= x;
            let over = cap.is_some_and(|cap| f64::from(b.in_flight()) + 1.0 > cap);
            if !thinned && !over {
                return Ok(i);
            }
            first.get_or_insert(i);
            // Decided for this pick: its other points are skipped.
            v.w[i] = -x;
            rejected += 1;
            if rejected == v.count {
                break;
            }
        }
        Err(first)
    }
}

#[cfg(test)]
mod tests;
