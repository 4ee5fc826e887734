//! Fast, deterministic maths for the query path: great-circle distance from
//! precomputed unit vectors and a natural logarithm, both in plain
//! arithmetic. Plain arithmetic matters twice: it is several times cheaper
//! than libm's `asin`/`ln` per candidate DC, and it gives bit-identical
//! results on every machine, so every server of a fleet draws the same DC
//! for a cell whatever its libm version.

use super::LatLon;

/// Mean Earth radius (GRS80), the one `geo::Haversine` uses.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on the unit sphere.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitVec {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl UnitVec {
    pub fn from_latlon(p: LatLon) -> UnitVec {
        let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
        UnitVec {
            x: lat.cos() * lon.cos(),
            y: lat.cos() * lon.sin(),
            z: lat.sin(),
        }
    }

    /// Great-circle distance in km. Identical to the haversine formula
    /// (`2R·asin(chord/2)` *is* haversine), without trigonometry per call.
    #[inline]
    pub fn distance_km(&self, o: &UnitVec) -> f64 {
        let (dx, dy, dz) = (self.x - o.x, self.y - o.y, self.z - o.z);
        let half_chord = ((dx * dx + dy * dy + dz * dz).sqrt() * 0.5).min(1.0);
        2.0 * EARTH_RADIUS_KM * asin(half_chord)
    }
}

/// asin on [0, 1], absolute error below 1e-9 rad (6 mm on Earth).
#[inline]
fn asin(y: f64) -> f64 {
    if y <= 0.5 {
        asin_small(y)
    } else {
        // asin(y) = π/2 − 2·asin(√((1−y)/2)), whose argument is ≤ 0.5.
        std::f64::consts::FRAC_PI_2 - 2.0 * asin_small(((1.0 - y) * 0.5).sqrt())
    }
}

/// Taylor series of asin for |z| ≤ 0.5.
#[inline]
fn asin_small(z: f64) -> f64 {
    // Coefficients (2n)! / (4^n (n!)^2 (2n+1)), n = 0..=13.
    const C: [f64; 14] = [
        1.0,
        1.0 / 6.0,
        3.0 / 40.0,
        15.0 / 336.0,
        105.0 / 3456.0,
        945.0 / 42240.0,
        10395.0 / 599040.0,
        135135.0 / 9676800.0,
        2027025.0 / 175472640.0,
        34459425.0 / 3530096640.0,
        654729075.0 / 78033715200.0,
        13749310575.0 / 1880240947200.0,
        316234143225.0 / 49049763840000.0,
        7905853580625.0 / 1377317368627200.0,
    ];
    let z2 = z * z;
    let mut acc = C[13];
    for c in C[..13].iter().rev() {
        acc = acc * z2 + c;
    }
    z * acc
}

/// Natural logarithm, relative error below 1e-12 for normal positive
/// numbers; falls back to libm elsewhere (never on the query path).
#[inline]
pub fn ln(x: f64) -> f64 {
    if !(x.is_normal() && x > 0.0) {
        return x.ln();
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = 2.0
        + s2 * (2.0 / 3.0
            + s2 * (2.0 / 5.0
                + s2 * (2.0 / 7.0
                    + s2 * (2.0 / 9.0
                        + s2 * (2.0 / 11.0 + s2 * (2.0 / 13.0 + s2 * (2.0 / 15.0)))))));
    e as f64 * std::f64::consts::LN_2 + s * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_matches_geo_haversine() {
        let pts = [
            (50.11, 8.68),
            (38.95, -77.45),
            (1.35, 103.82),
            (-33.87, 151.21),
            (0.0, 0.0),
            (0.0, 180.0),
            (90.0, 0.0),
            (-90.0, 0.0),
            (50.11, 8.6801),
            (-23.55, -46.63),
        ];
        for a in pts {
            for b in pts {
                let (pa, pb) = (LatLon { lat: a.0, lon: a.1 }, LatLon { lat: b.0, lon: b.1 });
                let fast = UnitVec::from_latlon(pa).distance_km(&UnitVec::from_latlon(pb));
                let reference = super::super::distance_km(pa, pb);
                assert!(
                    (fast - reference).abs() < 1e-3,
                    "{a:?} {b:?}: {fast} vs {reference}"
                );
            }
        }
    }

    #[test]
    fn asin_is_accurate_everywhere() {
        for i in 0..=10_000 {
            let y = f64::from(i) / 10_000.0;
            assert!((asin(y) - y.asin()).abs() < 1e-9, "{y}");
        }
    }

    #[test]
    fn ln_is_accurate() {
        let mut x: f64 = 1e-300;
        while x < 1e300 {
            let r = x.ln();
            let err = (ln(x) - r).abs() / r.abs().max(1.0);
            assert!(err < 1e-12, "{x}: {} vs {r}", ln(x));
            x *= 1.37;
        }
        for x in [1.0, 2.0, 0.5, std::f64::consts::E, 1e-16, 37.4] {
            assert!((ln(x) - x.ln()).abs() < 1e-12, "{x}");
        }
        assert!(ln(0.0).is_infinite() && ln(-1.0).is_nan());
    }
}
