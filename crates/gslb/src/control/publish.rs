//! From the state owner's maps to the immutable [`World`] the query path
//! reads: one [`ZoneView`] per zone, aligned with its datacenters, swapped in
//! only when something changed.

use std::sync::Arc;
use std::time::Instant;

use super::world::{self, DcView, World, ZoneView};
use super::{Control, Inner};
use crate::load::LoadConfig;
use crate::zone::ZoneSet;

/// Whether `views` over `zones` say exactly what `w` already says.
fn same_state(w: &World, zones: &Arc<ZoneSet>, views: &[ZoneView]) -> bool {
    Arc::ptr_eq(&w.zones, zones)
        && w.views.len() == views.len()
        && w.views.iter().zip(views).all(|(a, b)| {
            a.temperature == b.temperature
                && a.price == b.price
                && a.dcs.len() == b.dcs.len()
                && a.dcs.iter().zip(&b.dcs).all(|(x, y)| {
                    x.health == y.health
                        && x.drained == y.drained
                        && x.utilisation == y.utilisation
                        && x.load_source == y.load_source
                        && x.capacity == y.capacity
                        && x.feed_health == y.feed_health
                        && x.feed_reason == y.feed_reason
                        && x.mu == y.mu
                        && x.phase == y.phase
                })
        })
}

fn fallback_of(cfg: Option<&LoadConfig>) -> f64 {
    cfg.map_or(0.0, |l| l.fallback)
}

impl Control {
    /// Builds the snapshot of `inner` and swaps it in, unless it would say
    /// exactly what the current one says.
    ///
    /// Every change reaches the query path through here, so a DC that has
    /// just become usable, whatever made it so (undrain, a probe's rise, a
    /// reload that adds it), is priced out of every cell before any query
    /// sees it ([`admit_returning`](Control::admit_returning)).
    pub(super) fn publish(&self, inner: &mut Inner) {
        self.admit_returning(inner);
        let now = Instant::now();
        let views: Vec<ZoneView> = inner
            .zones
            .zones
            .iter()
            .map(|zone| {
                let zname = zone.origin_str();
                let dcs = zone
                    .datacenters
                    .iter()
                    .map(
                        |dc| match inner.dcs.get(&(zname.clone(), dc.name.clone())) {
                            Some(st) => {
                                let reading = st.load.current(now);
                                let facts = st.load.facts(now);
                                DcView {
                                    health: st.health.state,
                                    drained: st.drained,
                                    utilisation: reading.utilisation,
                                    load_source: reading.source,
                                    capacity: st.capacity(now, dc.capacity),
                                    feed_health: facts.and_then(|f| f.health),
                                    feed_reason: facts.and_then(|f| f.reason.clone()),
                                    mu: st.price.mu,
                                    phase: st.price.phase,
                                    counters: st.counters.clone(),
                                }
                            }
                            None => DcView::cold(fallback_of(dc.load.as_ref()), dc.capacity),
                        },
                    )
                    .collect();
                let outcome = inner.outcomes.get(&zname).copied().unwrap_or_default();
                ZoneView::new(zone, dcs, outcome)
            })
            .collect();
        // A snapshot equal to the current one would only invalidate the
        // query path's decision caches.
        if same_state(&self.world.load(), &inner.zones, &views) {
            return;
        }
        self.world.store(Arc::new(World {
            zones: inner.zones.clone(),
            views,
            generation: world::next_generation(),
        }));
    }
}
