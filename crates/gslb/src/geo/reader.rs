//! One opened database: the memory-mapped file, checked before any lookup
//! can reach into it, what identifies it for reloads, and the full lookup.

use std::fs::{self, File};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::SystemTime;

use ipnet::IpNet;
use maxminddb::{Mmap, Reader};

use super::record::{GeoHit, RawRecord};
use super::writer::whole_space;
use super::{normalise_ip, GeoError};

/// What identifies the file a reader was loaded from. Replacing the file by
/// rename changes the inode, and as long as we keep the old file mapped its
/// inode cannot be reused, so a replacement is always noticed even within
/// the mtime granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    mtime: Option<SystemTime>,
    len: u64,
    dev: u64,
    inode: u64,
}

impl FileIdentity {
    pub(super) fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let (dev, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, inode) = (0, 0);
        FileIdentity {
            mtime: meta.modified().ok(),
            len: meta.len(),
            dev,
            inode,
        }
    }
}

/// Gives every opened database a distinct number, so caches keyed by data
/// offset can tell an old database's offsets from a new one's.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One opened database file: the mapped reader and what identifies it.
pub(super) struct Loaded {
    pub(super) reader: Reader<Mmap>,
    /// Distinct per opened database (see [`GENERATION`]).
    pub(super) generation: u64,
    pub(super) identity: FileIdentity,
    /// Whether the tree has the usual IPv4 subtree at `::/96`. Without it
    /// the maxminddb crate misreports the network of IPv4 lookups, and all
    /// of IPv4 falls under one leaf anyway.
    has_ipv4_subtree: bool,
}

impl Loaded {
    /// Opens, maps and validates `path` (format version, tree in bounds).
    pub(super) fn open(path: &Path) -> Result<Self, GeoError> {
        let file = File::open(path).map_err(|e| GeoError::io(path, "open", e))?;
        // fstat of the handle we map, not stat of the path: the path may be
        // replaced between the two, and the identity must describe the data.
        let meta = file.metadata().map_err(|e| GeoError::io(path, "stat", e))?;
        if !meta.is_file() {
            return Err(GeoError::invalid(path, "not a regular file"));
        }
        // SAFETY: the mapping is undefined behaviour-free only while nobody
        // truncates or rewrites the file in place. Databases are meant to be
        // replaced by rename (as `build_from_csv` does), which leaves our
        // mapping of the old inode intact.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| GeoError::io(path, "mmap", e))?;
        let len = mmap.len();
        let reader = Reader::from_source(mmap).map_err(|source| GeoError::Db {
            path: path.to_path_buf(),
            source,
        })?;

        let m = &reader.metadata;
        if m.binary_format_major_version != 2 {
            return Err(GeoError::invalid(
                path,
                format!(
                    "unsupported binary format version {}",
                    m.binary_format_major_version
                ),
            ));
        }
        if m.ip_version != 4 && m.ip_version != 6 {
            return Err(GeoError::invalid(
                path,
                format!("unsupported ip_version {}", m.ip_version),
            ));
        }
        // The reader indexes the tree without bounds checks of its own, so a
        // node count larger than the file would panic on lookup.
        let tree_bytes = u64::from(m.node_count) * u64::from(m.record_size) / 4;
        if m.node_count == 0 || tree_bytes + 16 > len as u64 {
            return Err(GeoError::invalid(
                path,
                format!(
                    "search tree of {} nodes does not fit in {len} bytes",
                    m.node_count
                ),
            ));
        }

        let has_ipv4_subtree = m.ip_version == 4
            || reader
                .lookup(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
                .and_then(|r| r.network())
                .is_ok_and(|n| n.prefix() >= 96);

        Ok(Loaded {
            reader,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            identity: FileIdentity::of(&meta),
            has_ipv4_subtree,
        })
    }

    /// Every IPv4 network the database holds a record for.
    pub(super) fn ipv4_networks(&self) -> Vec<IpNet> {
        let all = ipnetwork::IpNetwork::V4(
            ipnetwork::Ipv4Network::new(std::net::Ipv4Addr::UNSPECIFIED, 0).expect("/0 is valid"),
        );
        let Ok(iter) = self.reader.within(all, Default::default()) else {
            return Vec::new();
        };
        iter.filter_map(|r| r.ok()?.network().ok())
            .filter_map(|n| {
                IpNet::new(
                    normalise_ip(n.ip()),
                    n.prefix()
                        .saturating_sub(if n.ip().is_ipv6() { 96 } else { 0 }),
                )
                .ok()
            })
            .collect()
    }

    /// The full hit for `ip` (already normalised).
    pub(super) fn lookup(&self, ip: IpAddr) -> GeoHit {
        let result = match self.reader.lookup(ip) {
            Ok(r) => r,
            // Only an IPv6 address in an IPv4-only database gets here: the
            // database says nothing about the whole family.
            Err(e) => {
                tracing::trace!(%ip, error = %e, "geo lookup failed");
                return GeoHit::miss(whole_space(ip));
            }
        };
        let network = self.network_of(ip, &result);
        let raw = match result.decode::<RawRecord<'_>>() {
            Ok(Some(raw)) => raw,
            Ok(None) => return GeoHit::miss(network),
            Err(e) => {
                tracing::debug!(%ip, error = %e, "undecodable geo record");
                return GeoHit::miss(network);
            }
        };
        GeoHit::of_record(raw, network)
    }

    /// The database's network around `ip`, or the whole family where it
    /// reports none that holds `ip`.
    pub(super) fn network_of(
        &self,
        ip: IpAddr,
        result: &maxminddb::LookupResult<'_, Mmap>,
    ) -> IpNet {
        result
            .network()
            .ok()
            .and_then(|n| IpNet::new(n.ip(), n.prefix()).ok())
            .filter(|n| n.contains(&ip) && (self.has_ipv4_subtree || ip.is_ipv6()))
            .unwrap_or_else(|| whole_space(ip))
    }
}
