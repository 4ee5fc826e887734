//! The round-robin family. `round-robin` takes the eligible backends in
//! turn from one shared cursor, ignoring weights. `weighted-round-robin`
//! walks a schedule built once per snapshot, in which each backend appears
//! as often as its weight, interleaved. `smooth-weighted-round-robin` is
//! nginx's algorithm, with one set of current weights per worker thread so
//! workers never wait on each other.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use boltz_core::counter::Padded;

use super::random::{draw, unit};
use super::{integer_weights, Picker, View};

/// Weighted round-robin schedules are scaled down to at most this many
/// entries (but at least one per backend).
const MAX_SCHEDULE: u64 = 1 << 16;

/// The weighted round-robin schedule of backends with these weights.
pub(super) fn schedule(weights: &[f64]) -> Vec<u32> {
    build_schedule(&integer_weights(weights, MAX_SCHEDULE))
}

/// Smooth-WRR current weights for `backends`, one vector per worker.
pub(super) fn smooth_state(backends: usize, workers: usize) -> Vec<Padded<Mutex<Vec<f64>>>> {
    (0..workers.max(1))
        .map(|_| Padded(Mutex::new(vec![0.0; backends])))
        .collect()
}

impl Picker {
    /// `round-robin`: the k-th eligible backend, k from the shared cursor.
    pub(super) fn round_robin(&self, v: &View<'_>) -> Option<usize> {
        let k = self.cursor.0.fetch_add(1, Relaxed) % v.count;
        v.w.iter()
            .enumerate()
            .filter(|(_, &x)| x > 0.0)
            .nth(k)
            .map(|(i, _)| i)
    }

    /// `weighted-round-robin`: the schedule's next turn.
    pub(super) fn wrr(&self, v: &View<'_>) -> Option<usize> {
        if !self.schedule.is_empty() {
            let c = self.cursor.0.fetch_add(1, Relaxed);
            let i = self.schedule[c % self.schedule.len()] as usize;
            if let Some(&x) = v.w.get(i).filter(|&&x| x > 0.0) {
                // The schedule has full weights; a ramping backend keeps
                // the fraction of its turns its ramp allows.
                let full = v.backends[i].weight();
                if x >= full || unit() * full < x {
                    return Some(i);
                }
            }
        }
        // A missed turn (ineligible, excluded or ramping backend) goes to a
        // draw by effective weight, not to the next entry of the schedule:
        // that keeps every share exactly proportional (the scheduled share
        // wᵢ/W plus the missed fraction (1 − E/W) · eᵢ/E adds up to eᵢ/E),
        // where skipping would hand all of it to the schedule's successors.
        draw(v.w, v.total, None)
    }

    /// `smooth-weighted-round-robin`: each eligible backend's current
    /// weight grows by its weight, the largest is picked and pays the
    /// total back.
    pub(super) fn swrr(&self, v: &View<'_>, worker: usize) -> Option<usize> {
        let slot = &self.swrr[worker % self.swrr.len()].0;
        // Only this worker locks this mutex, so it never waits; a poisoned
        // one only means a panic mid-update, and the weights stay usable.
        let mut cur = slot.lock().unwrap_or_else(|e| e.into_inner());
        if cur.len() != v.w.len() {
            cur.clear();
            cur.resize(v.w.len(), 0.0);
        }
        let mut best: Option<usize> = None;
        for (i, &x) in v.w.iter().enumerate() {
            if x <= 0.0 {
                continue;
            }
            cur[i] += x;
            // Strictly greater: the first maximum wins, as in nginx.
            if best.is_none_or(|b| cur[i] > cur[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        cur[b] -= v.total;
        Some(b)
    }
}

/// Earliest deadline first with half-period phases: backend i's k-th turn
/// is due at (k + ½)/wᵢ, so turns are spread through the cycle instead of
/// bunched (weights 1:2:3 give c b a c b c).
pub(super) fn build_schedule(weights: &[u32]) -> Vec<u32> {
    let mut turns: Vec<(f64, u32)> = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        for k in 0..w {
            turns.push(((f64::from(k) + 0.5) / f64::from(w), i as u32));
        }
    }
    turns.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    turns.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests;
