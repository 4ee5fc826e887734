//! The query path's lookup: location and cell only, through a per-thread,
//! fixed-size cache by address and by record, so repeated clients skip the
//! tree and shared records skip decoding.

use std::net::IpAddr;

use ipnet::IpNet;

use super::reader::Loaded;
use super::record::{Location, RawLocationOnly};
use super::writer::whole_space;

/// A per-thread, fixed-size, direct-mapped cache of lookups by address and
/// of decoded locations by record. Its size never grows, so a flood of
/// distinct client subnets cannot grow memory; a miss only costs a lookup.
pub struct LocationCache {
    slots: Box<[Option<CachedLocation>]>,
    by_addr: Box<[Option<CachedAddress>]>,
}

/// ((database generation, address bits), (location, cell)).
type CachedAddress = ((u64, u128), (Option<Location>, IpNet));

/// ((database generation, data offset), decoded location).
type CachedLocation = ((u64, u64), Option<Location>);

impl LocationCache {
    /// `slots` is rounded up to a power of two.
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        LocationCache {
            slots: vec![None; n].into_boxed_slice(),
            by_addr: vec![None; n * 2].into_boxed_slice(),
        }
    }
}

impl Default for LocationCache {
    fn default() -> Self {
        Self::new(8192)
    }
}

impl Loaded {
    /// Location and cell only, with decoded locations cached by the record's
    /// data offset: many networks share one record, and decoding is most of
    /// a lookup's cost.
    pub(super) fn locate(
        &self,
        ip: IpAddr,
        cache: &mut LocationCache,
    ) -> (Option<Location>, IpNet) {
        // The answer is a function of the address alone, so repeated
        // addresses (ECS subnets are masked, resolvers repeat) skip the tree.
        let bits = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)) | 1 << 127,
            IpAddr::V6(a) => u128::from(a),
        };
        let akey = (self.generation, bits);
        let aslot = (boltz_core::hash::mix(bits as u64 ^ self.generation, (bits >> 64) as u64)
            as usize)
            & (cache.by_addr.len() - 1);
        if let Some((k, hit)) = cache.by_addr[aslot] {
            if k == akey {
                return hit;
            }
        }
        let hit = self.locate_uncached(ip, cache);
        cache.by_addr[aslot] = Some((akey, hit));
        hit
    }

    fn locate_uncached(&self, ip: IpAddr, cache: &mut LocationCache) -> (Option<Location>, IpNet) {
        let Ok(result) = self.reader.lookup(ip) else {
            return (None, whole_space(ip));
        };
        let network = self.network_of(ip, &result);
        let Some(offset) = result.offset() else {
            return (None, network);
        };
        let tag = (self.generation, offset as u64);
        let slot = (boltz_core::hash::splitmix64(offset as u64 ^ self.generation.rotate_left(32))
            as usize)
            & (cache.slots.len() - 1);
        if let Some((t, loc)) = cache.slots[slot] {
            if t == tag {
                return (loc, network);
            }
        }
        let loc = match result.decode::<RawLocationOnly>() {
            Ok(Some(r)) => r.valid(),
            _ => None,
        };
        cache.slots[slot] = Some((tag, loc));
        (loc, network)
    }
}
