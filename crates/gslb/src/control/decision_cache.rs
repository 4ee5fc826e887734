//! The decision for one client address, as both DNS paths ask for it:
//! [`Placement`], then [`decide`], cached per thread for the current
//! snapshot. Every query of a cell for a name in one snapshot has the same
//! answer by design, so it is computed once.

use std::net::IpAddr;

use super::decide::{decide, Decision, Family};
use super::placement::Placement;
use super::World;
use crate::geo::GeoDb;
use crate::steer::mix;
use crate::zone::Steered;

/// Everything a steering decision depends on: the snapshot (health, load,
/// prices, zones), the name, the family, the cell and its location.
#[derive(Clone, Copy, PartialEq, Eq)]
struct DecisionKey {
    generation: u64,
    steered: usize,
    family: u8,
    cell: u64,
    location: Option<(u64, u64)>,
}

/// A per-thread, fixed-size, direct-mapped cache of decisions. Every query
/// of a cell for a name in one snapshot has the same answer by design, so it
/// is computed once per snapshot; the size is fixed, so a flood of distinct
/// cells only evicts.
struct DecisionCache {
    slots: Box<[Option<(DecisionKey, Decision)>]>,
}

impl DecisionCache {
    const SLOTS: usize = 32768;

    #[inline(always)]
    fn get_or_insert(&mut self, key: DecisionKey, f: impl FnOnce() -> Decision) -> Decision {
        let h = mix(
            mix(key.cell, key.steered as u64),
            key.generation ^ u64::from(key.family),
        );
        let slot = &mut self.slots[(h as usize) & (Self::SLOTS - 1)];
        match slot {
            Some((k, d)) if *k == key => *d,
            _ => {
                let d = f();
                *slot = Some((key, d));
                d
            }
        }
    }
}

thread_local! {
    static DECISIONS: std::cell::RefCell<DecisionCache> =
        std::cell::RefCell::new(DecisionCache { slots: vec![None; DecisionCache::SLOTS].into_boxed_slice() });
}

/// The decision for one client address: geo placement, then [`decide`],
/// cached per thread for the current snapshot. What both DNS paths call.
#[inline(always)]
pub fn steer_client(
    world: &World,
    zone_index: usize,
    st: &Steered,
    family: Family,
    geo: Option<&GeoDb>,
    addr: IpAddr,
) -> (Decision, Placement) {
    let (zone, view) = (&world.zones.zones[zone_index], &world.views[zone_index]);
    let place = Placement::of(geo, addr);
    let location = place.location_for(zone);
    let key = DecisionKey {
        generation: world.generation,
        steered: st as *const Steered as usize,
        family: family as u8,
        cell: place.cell_hash,
        location: location.map(|l| (l.lat.to_bits(), l.lon.to_bits())),
    };
    let d = DECISIONS.with(|c| {
        c.borrow_mut().get_or_insert(key, || {
            decide(zone, view, st, family, location, place.cell_hash, None)
        })
    });
    (d, place)
}
