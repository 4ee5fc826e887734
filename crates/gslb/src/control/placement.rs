//! Where a client is, as far as steering cares: the geo database's location
//! and cell for an address, with decoded locations cached per thread.

use std::net::IpAddr;

use crate::geo::{normalise_ip, GeoDb, LocationCache};
use crate::steer::{self, LatLon};
use crate::zone::{UnknownLocation, Zone};

thread_local! {
    /// Each worker thread has its own cache: no sharing, no locks.
    static LOCATIONS: std::cell::RefCell<LocationCache> = std::cell::RefCell::new(LocationCache::default());
}

/// Where a client is, as far as steering cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// The location the database gave, if any.
    pub geo: Option<LatLon>,
    /// The geo database's network containing the address: the cell. Every
    /// address in it gets the same answer, so its prefix is the ECS scope.
    pub cell: ipnet::IpNet,
    /// Hash of `cell`, the client part of the draw's seed.
    pub cell_hash: u64,
}

impl Placement {
    /// Looks `ip` up; without a database every client is in one cell, `/0`.
    /// Decoded locations are cached per thread (see [`LocationCache`]).
    pub fn of(geo: Option<&GeoDb>, ip: IpAddr) -> Placement {
        let ip = normalise_ip(ip);
        let (geo, cell) = match geo {
            Some(db) => {
                let (loc, cell) = LOCATIONS.with(|c| db.locate(ip, &mut c.borrow_mut()));
                (
                    loc.map(|l| LatLon {
                        lat: l.lat,
                        lon: l.lon,
                    }),
                    cell,
                )
            }
            None => (
                None,
                ipnet::IpNet::new(ecs_zero(ip), 0).expect("prefix 0 is valid"),
            ),
        };
        Placement {
            geo,
            cell,
            cell_hash: steer::cell_hash(cell.network(), cell.prefix_len()),
        }
    }

    /// The location steering uses, after the zone's rule for unknown clients.
    pub fn location_for(&self, zone: &Zone) -> Option<LatLon> {
        self.geo.or(match zone.steering.unknown_location {
            UnknownLocation::WeightOnly => None,
            UnknownLocation::At(l) => Some(l),
        })
    }
}

fn ecs_zero(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}
