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
    /// Towards latitude 0, longitude 0.
    pub x: f64,
    /// Towards latitude 0, longitude 90° E.
    pub y: f64,
    /// Towards the North Pole.
    pub z: f64,
}

impl UnitVec {
    /// The point of a latitude and longitude in degrees.
    pub fn from_latlon(p: LatLon) -> UnitVec {
        let (sin_lat, cos_lat) = p.lat.to_radians().sin_cos();
        let (sin_lon, cos_lon) = p.lon.to_radians().sin_cos();
        UnitVec {
            x: cos_lat * cos_lon,
            y: cos_lat * sin_lon,
            z: sin_lat,
        }
    }

    /// Great-circle distance in km. Identical to the haversine formula
    /// (`2R·asin(chord/2)` *is* haversine), without trigonometry per call.
    #[inline]
    pub fn distance_km(&self, o: &UnitVec) -> f64 {
        Self::km_of_half_chord(self.half_chord(o))
    }

    /// Half the straight-line distance through the Earth, in Earth radii:
    /// `sin(angle/2)`, so `2R·half_chord` is a lower bound of the distance.
    #[inline]
    pub fn half_chord(&self, o: &UnitVec) -> f64 {
        let (dx, dy, dz) = (self.x - o.x, self.y - o.y, self.z - o.z);
        ((dx * dx + dy * dy + dz * dz).sqrt() * 0.5).min(1.0)
    }

    /// The great-circle distance for a [`UnitVec::half_chord`].
    #[inline]
    pub fn km_of_half_chord(h: f64) -> f64 {
        2.0 * EARTH_RADIUS_KM * asin(h)
    }
}

/// asin on [0, 1], absolute error below 3e-8 rad (0.2 m on Earth).
#[inline]
fn asin(y: f64) -> f64 {
    if y <= 0.5 {
        asin_small(y)
    } else {
        // asin(y) = π/2 − 2·asin(√((1−y)/2)), whose argument is ≤ 0.5.
        std::f64::consts::FRAC_PI_2 - 2.0 * asin_small(((1.0 - y) * 0.5).sqrt())
    }
}

/// Taylor series of asin for |z| ≤ 0.5, to z^19: error below 3e-8 rad
/// (0.2 m on Earth), far below anything steering can tell apart, in half the
/// multiplications of a full-precision series.
#[inline]
fn asin_small(z: f64) -> f64 {
    // Coefficients (2n)! / (4^n (n!)^2 (2n+1)), n = 0..=9.
    const C: [f64; 10] = [
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
    ];
    let z2 = z * z;
    let z4 = z2 * z2;
    // Estrin's scheme: pairs in parallel, then combine, to shorten the
    // dependency chain a Horner loop would make.
    let p01 = C[0] + C[1] * z2;
    let p23 = C[2] + C[3] * z2;
    let p45 = C[4] + C[5] * z2;
    let p67 = C[6] + C[7] * z2;
    let p89 = C[8] + C[9] * z2;
    let z8 = z4 * z4;
    let q0 = p01 + p23 * z4;
    let q1 = p45 + p67 * z4;
    z * (q0 + z8 * (q1 + p89 * z8))
}

/// Entries of the logarithm table: the top 7 bits of the mantissa.
const LN_TABLE_BITS: u32 = 7;
const LN_TABLE: usize = 1 << LN_TABLE_BITS;

/// `ln(m)` for m in [1, 2) by the atanh series, usable in `const` context:
/// builds the table at compile time, identically on every machine.
const fn ln_series(m: f64) -> f64 {
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    let mut i = 0;
    while i < 30 {
        sum += term / k;
        term *= s2;
        k += 2.0;
        i += 1;
    }
    2.0 * sum
}

/// (1/c_k, ln c_k) for c_k the centre of the k-th of 128 slices of [1, 2).
const LN_TABLE_DATA: [(f64, f64); LN_TABLE] = {
    let mut t = [(0.0, 0.0); LN_TABLE];
    let mut k = 0;
    while k < LN_TABLE {
        let c = 1.0 + (k as f64 + 0.5) / LN_TABLE as f64;
        t[k] = (1.0 / c, ln_series(c));
        k += 1;
    }
    t
};

/// Natural logarithm, relative error below 1e-12 for normal positive
/// numbers; falls back to libm elsewhere (never on the query path). A table
/// lookup on the top mantissa bits leaves |r| < 1/256, where five terms of
/// ln(1 + r) are exact to double precision; no division.
#[inline]
pub fn ln(x: f64) -> f64 {
    if !(x.is_normal() && x > 0.0) {
        return x.ln();
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let k = ((bits >> (52 - LN_TABLE_BITS)) & (LN_TABLE as u64 - 1)) as usize;
    let (inv_c, ln_c) = LN_TABLE_DATA[k];
    let r = m * inv_c - 1.0;
    let r2 = r * r;
    let log1p = r - r2 * (0.5 - r * (1.0 / 3.0)) + r2 * r2 * (-0.25 + r * 0.2);
    e as f64 * std::f64::consts::LN_2 + ln_c + log1p
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
            assert!((asin(y) - y.asin()).abs() < 3e-8, "{y}");
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
