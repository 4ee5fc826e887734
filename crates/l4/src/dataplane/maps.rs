//! The balancer's maps by file descriptor: from an object loaded in this
//! process, or reopened from their pins after a restart. The names are
//! those of `bpf/maps.h`, and the pins carry the same names.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys;

/// Map names in the object, pinned under the same names.
pub const MAPS: [&str; 10] = [
    "vips",
    "rings",
    "backends",
    "flows",
    "config",
    "flood",
    "stats",
    "vip_stats",
    "backend_stats",
    "nexthops",
];

/// File descriptors of the balancer's maps.
#[derive(Debug)]
pub struct Maps {
    /// VIP → metadata.
    pub vips: OwnedFd,
    /// VIP id → its Maglev table (map of maps).
    pub rings: OwnedFd,
    /// Backend index → address and flags.
    pub backends: OwnedFd,
    /// The connection table: `flow_sets` sets of `abi::FLOW_WAYS` slots.
    pub flows: OwnedFd,
    /// Sets in the connection table.
    pub flow_sets: u32,
    /// Source addresses, MAC, flood limit.
    pub config: OwnedFd,
    /// Global counters by event.
    pub stats: OwnedFd,
    /// Per-VIP counters.
    pub vip_stats: OwnedFd,
    /// Per-backend counters.
    pub backend_stats: OwnedFd,
    /// Per-CPU cache of next-hop MACs.
    pub nexthops: OwnedFd,
    /// Slots in a per-CPU value.
    pub cpus: usize,
}

impl Maps {
    fn from_fn(mut get: impl FnMut(&str) -> io::Result<OwnedFd>) -> io::Result<Maps> {
        let flows = get("flows")?;
        Ok(Maps {
            vips: get("vips")?,
            rings: get("rings")?,
            backends: get("backends")?,
            flow_sets: sys::map_max_entries(flows.as_fd())?,
            flows,
            config: get("config")?,
            stats: get("stats")?,
            vip_stats: get("vip_stats")?,
            backend_stats: get("backend_stats")?,
            nexthops: get("nexthops")?,
            cpus: sys::possible_cpus()?,
        })
    }

    /// Reopens the maps pinned in `dir`.
    pub fn open(dir: &Path) -> io::Result<Maps> {
        Maps::from_fn(|name| sys::obj_get(&dir.join(name)))
    }

    /// The maps of an object loaded in this process (tests, first start).
    pub fn of(ebpf: &aya::Ebpf) -> io::Result<Maps> {
        Maps::from_fn(|name| map_fd(ebpf, name)?.try_clone_to_owned())
    }
}

/// The file descriptor of the map `name` of a loaded object.
pub(super) fn map_fd<'a>(ebpf: &'a aya::Ebpf, name: &str) -> io::Result<BorrowedFd<'a>> {
    use aya::maps::Map;
    let map = ebpf
        .map(name)
        .ok_or_else(|| io::Error::other(format!("object has no map {name}")))?;
    let data = match map {
        Map::Array(d) | Map::ArrayOfMaps(d) | Map::HashMap(d) | Map::PerCpuArray(d) => d,
        _ => return Err(io::Error::other("unexpected map type in the object")),
    };
    Ok(data.fd().as_fd())
}
