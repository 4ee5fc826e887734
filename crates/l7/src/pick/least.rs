//! The full-scan family: every eligible backend scored, the lowest wins
//! (ties shared at random). `least-connections` scores requests in
//! flight per unit of weight, `least-time` the same times PeakEWMA
//! latency.

use super::random::unit;
use super::View;
use crate::backend::Backend;

/// `least-connections`: (in flight + 1) / weight.
pub(super) fn connections(v: &View<'_>) -> Option<usize> {
    least(v, |b, w| f64::from(b.in_flight() + 1) / w)
}

/// `least-time`: PeakEWMA × (in flight + 1) / weight.
pub(super) fn time(v: &View<'_>) -> Option<usize> {
    least(v, |b, w| {
        b.ewma.get().max(1.0) * f64::from(b.in_flight() + 1) / w
    })
}

/// Full scan for the minimum score; ties broken uniformly at random
/// (reservoir sampling), so equal backends share evenly.
fn least(v: &View<'_>, score: impl Fn(&Backend, f64) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    let mut ties = 0u32;
    for (i, &x) in v.w.iter().enumerate() {
        if x <= 0.0 {
            continue;
        }
        let s = score(&v.backends[i], x);
        match best {
            Some((_, bs)) if s > bs => {}
            Some((_, bs)) if s == bs => {
                ties += 1;
                if unit() * f64::from(ties) < 1.0 {
                    best = Some((i, s));
                }
            }
            _ => {
                best = Some((i, s));
                ties = 1;
            }
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use crate::pick::random::reseed;
    use crate::pick::tests::{assert_close, opts, pool, shares};
    use crate::pick::{Algorithm, Picker};
    use boltz_core::clock::precise_ns;

    #[test]
    fn least_connections_and_least_time_take_the_minimum() {
        let b = pool(&[1.0, 1.0, 1.0, 2.0]);
        let now = precise_ns();
        let _g: Vec<_> = [(0, 3), (1, 1), (2, 4), (3, 3)]
            .iter()
            .flat_map(|&(i, n)| (0..n).map(move |_| i))
            .map(|i| b[i].start())
            .collect();
        // (in_flight+1)/weight: 4, 2, 5, 2 → a tie between 1 and 3.
        reseed(5);
        let p = Picker::new(Algorithm::LeastConnections, &b, opts());
        let s = shares(&p, &b, 4000, now);
        assert_close(&s, &[0.0, 0.5, 0.0, 0.5], 0.04, "least-connections");
        assert_eq!(s[0] + s[2], 0.0);

        for (x, ms) in b.iter().zip([1.0, 5.0, 1.0, 1.5]) {
            x.ewma.observe(ms * 1e6, now, 1e9);
        }
        // ewma × (in_flight+1)/weight: 4, 10, 5, 3.
        let p = Picker::new(Algorithm::LeastTime, &b, opts());
        assert_eq!(shares(&p, &b, 100, now), [0.0, 0.0, 0.0, 1.0]);
    }
}
