//! The steering decision for one steered name and one client cell: which
//! DCs answer, with which addresses and TTL. Shared by the DNS handler, the
//! API's explain and `boltz explain`, so the explanation is always the code
//! path that answered.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::world::{DcStatus, ZoneView};
use crate::load::FeedHealth;
use crate::steer::fastmath::EARTH_RADIUS_KM;
use crate::steer::{self, LatLon, TopN, UnitVec};
use crate::zone::{AllDown, Datacenter, Steered, Zone};

/// Address family of the query (A or AAAA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Family {
    /// An A query.
    V4,
    /// An AAAA query.
    V6,
}

/// How the answer came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Boltzmann draw among usable DCs.
    Steered,
    /// No candidate has an address of the family: NODATA.
    NoAddressFamily,
    /// Every candidate unusable; the zone's all-down policy answered.
    AllDownServeAll,
    /// Every candidate unusable; answered with the zone's fallback addresses.
    AllDownFallback,
    /// Every candidate unusable; answered SERVFAIL by policy.
    AllDownServfail,
}

/// The outcome of [`decide`]. Holds no heap data: the query path turns it
/// into records with [`Decision::addresses`].
#[derive(Clone, Copy, Debug)]
pub struct Decision {
    /// How the answer came about.
    pub mode: Mode,
    /// TTL of the answer (shortened while a candidate is degraded).
    pub ttl: u32,
    /// The family the answer is for.
    pub family: Family,
    /// The drawn DCs, best first: indices into `Zone::datacenters`.
    drawn: Drawn,
}

/// The drawn order in a compact form, so decisions are cheap to cache.
#[derive(Clone, Copy, Debug, Default)]
struct Drawn {
    idx: [u16; steer::MAX_ANSWERS],
    len: u8,
}

impl Drawn {
    fn of(top: &TopN) -> Drawn {
        let mut d = Drawn::default();
        for (slot, &i) in d.idx.iter_mut().zip(top.as_slice()) {
            // Zones are limited to far fewer than 65536 DCs by compile.
            *slot = i as u16;
        }
        d.len = top.as_slice().len() as u8;
        d
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.idx[..usize::from(self.len)]
            .iter()
            .map(|&i| usize::from(i))
    }
}

impl Decision {
    /// Indices of the DCs whose addresses answer, in answer order.
    pub fn chosen<'a>(
        &'a self,
        zone: &'a Zone,
        st: &'a Steered,
    ) -> impl Iterator<Item = usize> + 'a {
        let all = (self.mode == Mode::AllDownServeAll).then_some(st.datacenters.iter().copied());
        let family = self.family;
        self.drawn.iter().chain(
            all.into_iter()
                .flatten()
                .filter(move |&i| has_family(&zone.datacenters[i], family)),
        )
    }

    /// The answer's addresses (empty means NODATA, unless the mode is
    /// SERVFAIL).
    pub fn addresses<'a>(
        &'a self,
        zone: &'a Zone,
        st: &'a Steered,
    ) -> impl Iterator<Item = IpAddr> + 'a {
        let family = self.family;
        let fallback = match (&zone.steering.all_down, self.mode) {
            (AllDown::Fallback(list), Mode::AllDownFallback) => &list[..],
            _ => &[],
        };
        self.chosen(zone, st)
            .flat_map(move |i| dc_addrs(&zone.datacenters[i], family))
            .chain(
                fallback
                    .iter()
                    .copied()
                    .filter(move |a| a.is_ipv4() == (family == Family::V4)),
            )
    }
}

/// One line of an explanation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplainRow {
    /// The DC's name.
    pub datacenter: String,
    /// Great-circle distance from the client (`None`: location unknown).
    pub distance_km: Option<f64>,
    /// Distance over the zone's `distance_scale_km`.
    pub distance_energy: f64,
    /// The DC's load price μ.
    pub mu: f64,
    /// Total energy: distance energy plus μ.
    pub energy: f64,
    /// The zone's weight of the DC (Boltzmann degeneracy).
    pub weight: f64,
    /// Smoothed utilisation.
    pub utilisation: f64,
    /// Health and drain as the API shows them.
    pub status: DcStatus,
    /// What the DC's fresh feed says of its health (`down` excludes it).
    #[serde(default)]
    pub feed_health: Option<FeedHealth>,
    /// The feed's reason for it.
    #[serde(default)]
    pub feed_reason: Option<String>,
    /// Has an address of the query's family.
    pub has_family: bool,
    /// Eligible for new answers.
    pub usable: bool,
    /// Probability of being drawn first.
    pub probability: f64,
    /// 1-based place in the drawn order, if it answered.
    pub drawn: Option<usize>,
}

fn has_family(dc: &Datacenter, f: Family) -> bool {
    match f {
        Family::V4 => !dc.ipv4.is_empty(),
        Family::V6 => !dc.ipv6.is_empty(),
    }
}

fn dc_addrs(dc: &Datacenter, f: Family) -> impl Iterator<Item = IpAddr> + '_ {
    let v4 = (f == Family::V4).then(|| dc.ipv4.iter().map(|a| IpAddr::V4(*a)));
    let v6 = (f == Family::V6).then(|| dc.ipv6.iter().map(|a| IpAddr::V6(*a)));
    v4.into_iter().flatten().chain(v6.into_iter().flatten())
}

/// Candidate lists up to this long keep their logits on the stack (longer
/// ones allocate).
const STACK_CANDIDATES: usize = 64;

/// Decides the answer. `location` is `None` when the client's place is
/// unknown and the zone chose weight-only steering; `cell` is the hash of the
/// client's geo cell. Allocation free; with `rows`, every candidate's numbers
/// are recorded as well (explain).
///
/// Phases: score the candidates (logits, and the N best of them), draw
/// among those the noise can still carry into the top N, then the TTL and
/// the mode; explain rows last, off the query path.
pub fn decide(
    zone: &Zone,
    view: &ZoneView,
    st: &Steered,
    family: Family,
    location: Option<LatLon>,
    cell: u64,
    rows: Option<&mut Vec<ExplainRow>>,
) -> Decision {
    let client = location.map(UnitVec::from_latlon);
    let n = st.datacenters.len();
    let mut on_stack = [f64::NEG_INFINITY; STACK_CANDIDATES];
    let mut on_heap = Vec::new();
    let logits: &mut [f64] = if n <= STACK_CANDIDATES {
        &mut on_stack[..n]
    } else {
        on_heap.resize(n, f64::NEG_INFINITY);
        &mut on_heap
    };
    let mut best = TopN::new(st.answers);
    let scored = score(zone, view, st, family, client, logits, &mut best);
    let seed = steer::draw_seed(cell, st.name_hash, zone.steering.epoch);
    let mut drawn = TopN::new(st.answers);
    draw(zone, st, logits, &best, seed, &mut drawn);
    let ttl = answer_ttl(zone, st, scored.degraded);
    let mode = mode_of(zone, scored.any_family, &drawn);
    if let Some(rows) = rows {
        explain_rows(zone, view, st, family, client, &drawn, rows);
    }
    Decision {
        mode,
        ttl,
        family,
        drawn: Drawn::of(&drawn),
    }
}

/// What scoring learned besides the logits and the N best.
struct Scored {
    /// Some candidate has an address of the family.
    any_family: bool,
    /// Some candidate is degraded (shortens the TTL).
    degraded: bool,
}

/// Pass 1: logits into `logits` (aligned with `st.datacenters`, −∞ for
/// candidates never scored), and the N best of them into `best`. The Gumbel
/// noise spans less than GUMBEL_SPAN, so a DC whose logit trails N others
/// by more cannot be drawn: pass 2 skips its noise (two logarithms), which
/// in a cold system is nearly every DC. Pure pruning: the draw is unchanged.
#[inline(always)]
fn score(
    zone: &Zone,
    view: &ZoneView,
    st: &Steered,
    family: Family,
    client: Option<UnitVec>,
    logits: &mut [f64],
    best: &mut TopN,
) -> Scored {
    let scales = steer::Scales::new(zone.steering.distance_scale_km, view.temperature);
    let mut s = Scored {
        any_family: false,
        degraded: false,
    };
    for (k, &i) in st.datacenters.iter().enumerate() {
        let (dc, v) = (&zone.datacenters[i], &view.dcs[i]);
        s.degraded |= v.degraded();
        if !has_family(dc, family) {
            continue;
        }
        s.any_family = true;
        if !v.usable() {
            continue;
        }
        // The chord is a cheap lower bound of the arc, so its logit bounds
        // the real one from above: a DC already hopeless by the bound skips
        // the asin as well.
        let half_chord = client.map_or(0.0, |c| c.half_chord(&dc.unit));
        if let Some(worst) = best.worst_key() {
            let upper = steer::logit(
                dc.ln_weight,
                2.0 * EARTH_RADIUS_KM * half_chord,
                v.mu,
                &scales,
            );
            if upper < -worst - steer::GUMBEL_SPAN {
                continue;
            }
        }
        let logit = steer::logit(
            dc.ln_weight,
            UnitVec::km_of_half_chord(half_chord),
            v.mu,
            &scales,
        );
        logits[k] = logit;
        best.offer(-logit, k);
    }
    s
}

/// Pass 2: the Gumbel race among the candidates within GUMBEL_SPAN of the
/// N-th best logit, into `drawn` as indices into `Zone::datacenters`.
#[inline(always)]
fn draw(zone: &Zone, st: &Steered, logits: &[f64], best: &TopN, seed: u64, drawn: &mut TopN) {
    let cutoff = best
        .worst_key()
        .map_or(f64::NEG_INFINITY, |k| -k - steer::GUMBEL_SPAN);
    for (k, &i) in st.datacenters.iter().enumerate() {
        // −∞ marks candidates that were never scored (unusable or hopeless).
        if logits[k] > f64::NEG_INFINITY && logits[k] >= cutoff {
            drawn.offer(steer::gumbel(seed, zone.datacenters[i].id) - logits[k], i);
        }
    }
}

/// The name's TTL, shortened (never to 0) while a candidate is degraded.
#[inline]
fn answer_ttl(zone: &Zone, st: &Steered, degraded: bool) -> u32 {
    if degraded && st.ttl > 0 {
        ((f64::from(st.ttl) * zone.steering.degraded_ttl_factor).round() as u32).max(1)
    } else {
        st.ttl
    }
}

/// How the answer came about: steered, NODATA, or the zone's all-down policy.
#[inline]
fn mode_of(zone: &Zone, any_family: bool, drawn: &TopN) -> Mode {
    if !any_family {
        Mode::NoAddressFamily
    } else if drawn.as_slice().is_empty() {
        match &zone.steering.all_down {
            AllDown::ServeAll => Mode::AllDownServeAll,
            AllDown::ServFail => Mode::AllDownServfail,
            AllDown::Fallback(_) => Mode::AllDownFallback,
        }
    } else {
        Mode::Steered
    }
}

/// One [`ExplainRow`] per candidate. Probabilities over the usable
/// candidates of the family are computed again here (with the exact
/// distance), so the query path never builds this table. Kept out of line:
/// it is explain's, and would only crowd the query path's code.
#[inline(never)]
fn explain_rows(
    zone: &Zone,
    view: &ZoneView,
    st: &Steered,
    family: Family,
    client: Option<UnitVec>,
    drawn: &TopN,
    rows: &mut Vec<ExplainRow>,
) {
    let scale = zone.steering.distance_scale_km;
    let scales = &steer::Scales::new(scale, view.temperature);
    let distance = |dc: &Datacenter| client.map(|c| c.distance_km(&dc.unit));
    let logits: Vec<Option<f64>> = st
        .datacenters
        .iter()
        .map(|&i| {
            let (dc, v) = (&zone.datacenters[i], &view.dcs[i]);
            (has_family(dc, family) && v.usable())
                .then(|| steer::logit(dc.ln_weight, distance(dc).unwrap_or(0.0), v.mu, scales))
        })
        .collect();
    let max = logits
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logits.iter().flatten().map(|l| (l - max).exp()).sum();
    for (k, &i) in st.datacenters.iter().enumerate() {
        let (dc, v) = (&zone.datacenters[i], &view.dcs[i]);
        let d = distance(dc);
        let de = d.unwrap_or(0.0) / scale;
        rows.push(ExplainRow {
            datacenter: dc.name.clone(),
            distance_km: d,
            distance_energy: de,
            mu: v.mu,
            energy: de + v.mu,
            weight: dc.weight,
            utilisation: v.utilisation,
            status: v.status(),
            feed_health: v.feed_health,
            feed_reason: v.feed_reason.clone(),
            has_family: has_family(dc, family),
            usable: v.usable(),
            probability: logits[k].map_or(0.0, |l| (l - max).exp() / z),
            drawn: drawn.as_slice().iter().position(|&c| c == i).map(|p| p + 1),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::World;
    use crate::zone::ZoneSet;
    use std::fmt::Write;

    /// Pruning must not change the draw: compare with the plain race over
    /// every usable candidate, for cold and hot temperatures and N answers.
    #[test]
    fn pruned_draw_equals_the_full_race() {
        for (t, answers) in [(0.01, 1), (0.05, 3), (0.7, 2), (30.0, 4)] {
            let mut z = format!(
                "origin = \"e.\"\nsoa = {{ mname = \"n.e.\", rname = \"h.e.\", serial = 1 }}\nns = [\"n.e.\"]\n[steering]\ntemperature = {t}\n"
            );
            let mut names = Vec::new();
            for i in 0..20 {
                let (lat, lon) = (-60.0 + 6.0 * f64::from(i), -170.0 + 17.0 * f64::from(i));
                let _ = write!(z, "[datacenters.d{i}]\nlocation = [{lat}, {lon}]\nweight = {}\nipv4 = [\"192.0.2.{i}\"]\n", 1 + i % 3);
                names.push(format!("\"d{i}\""));
            }
            let _ = write!(z, "[records]\nw = {{ type = \"steered\", datacenters = [{}], answers = {answers} }}\n", names.join(","));
            let zone = ZoneSet::parse_one(std::path::Path::new("e.toml"), &z).unwrap();
            let world = World::cold(std::sync::Arc::new(ZoneSet::new(vec![zone])));
            let zone = &world.zones.zones[0];
            let st = zone.any_steered().unwrap();
            for cell in 0..2000u64 {
                let loc = LatLon {
                    lat: (cell % 170) as f64 - 85.0,
                    lon: (cell % 359) as f64 - 179.0,
                };
                let d = decide(zone, &world.views[0], st, Family::V4, Some(loc), cell, None);
                let cands: Vec<steer::Candidate> = st
                    .datacenters
                    .iter()
                    .map(|&i| {
                        let dc = &zone.datacenters[i];
                        steer::Candidate {
                            distance_km: UnitVec::from_latlon(loc).distance_km(&dc.unit),
                            weight: dc.weight,
                            mu: 0.0,
                            id: dc.id,
                        }
                    })
                    .collect();
                let seed = steer::draw_seed(cell, st.name_hash, 0);
                let mut full = [0usize; 8];
                let n = steer::draw_into(
                    seed,
                    &cands,
                    zone.steering.distance_scale_km,
                    world.views[0].temperature,
                    &mut full[..answers],
                );
                let chosen: Vec<usize> = d.chosen(zone, st).collect();
                let expected: Vec<usize> = full[..n].iter().map(|&k| st.datacenters[k]).collect();
                assert_eq!(chosen, expected, "T {t}, N {answers}, cell {cell}");
            }
        }
    }
}
