//! Power of two choices (Mitzenmacher; Finagle's and Linkerd's balancer):
//! two distinct candidates drawn by weight, the cheaper one wins.
//! `p2c-peak-ewma` compares PeakEWMA cost (latency × load, raised by
//! failures), `least-request` compares requests in flight (Envoy's
//! `least_request`). The hash algorithms fall back to P2C over PeakEWMA
//! for a request without a key.

use super::random::draw;
use super::View;
use crate::backend::Backend;

/// How much cheaper the second candidate must be to win a P2C comparison.
/// Latency estimates of equal backends differ by noise (PeakEWMA keeps the
/// last peak for seconds, and a backend that takes more traffic sees more
/// peaks), so a strict comparison would push traffic away from the
/// heaviest backend; inside this margin the first candidate, drawn in
/// proportion to weight, wins, so equal backends split by weight, while a
/// slow, failing or loaded backend (cost several times higher) still loses.
pub const P2C_MARGIN: f64 = 2.0;

/// `p2c-peak-ewma`: the second candidate wins only if its cost is
/// [`P2C_MARGIN`] times lower.
pub(super) fn peak_ewma(v: &View<'_>) -> Option<usize> {
    p2c(v, |a, b| b.cost() * P2C_MARGIN < a.cost())
}

/// `least-request`: the second candidate wins with fewer requests in
/// flight.
pub(super) fn least_request(v: &View<'_>) -> Option<usize> {
    p2c(v, |a, b| b.in_flight() < a.in_flight())
}

/// Power of two choices: two distinct backends drawn by weight; the second
/// wins only if strictly `better`, so with equal scores shares follow the
/// weights exactly.
fn p2c(v: &View<'_>, better: impl Fn(&Backend, &Backend) -> bool) -> Option<usize> {
    let a = draw(v.w, v.total, None)?;
    if v.count < 2 {
        return Some(a);
    }
    let Some(b) = draw(v.w, v.total - v.w[a], Some(a)) else {
        return Some(a);
    };
    if better(&v.backends[a], &v.backends[b]) {
        Some(b)
    } else {
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use crate::pick::random::reseed;
    use crate::pick::tests::{assert_close, opts, pool, shares};
    use crate::pick::{Algorithm, Picker};
    use boltz_core::clock::precise_ns;

    #[test]
    fn p2c_avoids_slow_and_busy_backends() {
        let b = pool(&[1.0; 3]);
        let now = precise_ns();
        for x in &b {
            x.ewma.observe(1e6, now, 1e9);
        }
        b[1].ewma.observe(100e6, now, 1e9);
        reseed(3);
        let p = Picker::new(Algorithm::P2cPeakEwma, &b, opts());
        let s = shares(&p, &b, 10_000, now);
        assert_eq!(s[1], 0.0, "slow backend loses every comparison: {s:?}");
        assert_close(&s, &[0.5, 0.0, 0.5], 0.02, "p2c");

        let c = pool(&[1.0; 3]);
        let held: Vec<_> = (0..50).map(|_| c[2].start()).collect();
        for a in [Algorithm::P2cPeakEwma, Algorithm::LeastRequest] {
            let p = Picker::new(a, &c, opts());
            let s = shares(&p, &c, 10_000, now);
            assert_eq!(s[2], 0.0, "{}: busy backend picked {s:?}", a.name());
        }
        drop(held);
        let p = Picker::new(Algorithm::LeastRequest, &c, opts());
        assert!(shares(&p, &c, 3000, now)[2] > 0.25, "in-flight released");
    }
}
