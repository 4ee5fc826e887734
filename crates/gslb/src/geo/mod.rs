//! IP geolocation for the DNS query path: a memory-mapped MaxMind DB
//! (GeoIP2-City layout, e.g. built by [`build_from_csv`]) that answers
//! lookups without blocking or failing and can be hot-reloaded while
//! lookups run on other threads.
//!
//! Submodules: [`writer`] produces `.mmdb` files, [`csv`] builds them from a
//! simple CSV source.

pub mod csv;
pub mod writer;

pub use self::csv::{build_from_csv, BuildStats};
pub use self::writer::{GeoRecord, MmdbWriter};

use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use maxminddb::{MaxMindDbError, Mmap, Reader};
use serde::Deserialize;

use self::writer::whole_space;

/// Errors of building, opening and reloading geo databases. Every variant
/// names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A bad line in a CSV source.
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid MaxMind DB: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl GeoError {
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        GeoError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    fn invalid(path: &Path, message: impl Into<String>) -> Self {
        GeoError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

/// Result of a lookup. `network` is the prefix the database treats
/// uniformly around the address (useful e.g. as an ECS scope), also when it
/// has no data there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoHit {
    pub location: Option<Location>,
    pub network: IpNet,
    /// Upper-case ISO 3166-1 alpha-2 code.
    pub country: Option<[u8; 2]>,
    /// Upper-case continent code (EU, NA, ...).
    pub continent: Option<[u8; 2]>,
}

impl GeoHit {
    pub fn country_str(&self) -> Option<&str> {
        self.country
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    pub fn continent_str(&self) -> Option<&str> {
        self.continent
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    fn miss(network: IpNet) -> Self {
        GeoHit {
            location: None,
            network,
            country: None,
            continent: None,
        }
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to IPv4, leaves
/// everything else alone.
pub fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// What identifies the file a reader was loaded from. Replacing the file by
/// rename changes the inode, and as long as we keep the old file mapped its
/// inode cannot be reused, so a replacement is always noticed even within
/// the mtime granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    mtime: Option<SystemTime>,
    len: u64,
    dev: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
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

struct Loaded {
    reader: Reader<Mmap>,
    generation: u64,
    identity: FileIdentity,
    /// Whether the tree has the usual IPv4 subtree at `::/96`. Without it
    /// the maxminddb crate misreports the network of IPv4 lookups, and all
    /// of IPv4 falls under one leaf anyway.
    has_ipv4_subtree: bool,
}

impl Loaded {
    fn open(path: &Path) -> Result<Self, GeoError> {
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

    fn lookup(&self, ip: IpAddr) -> GeoHit {
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
        let location = raw.location.and_then(RawLocation::valid);
        GeoHit {
            location,
            network,
            country: raw.country.and_then(|c| code(c.iso_code?)),
            continent: raw.continent.and_then(|c| code(c.code?)),
        }
    }
}

impl Loaded {
    fn network_of(&self, ip: IpAddr, result: &maxminddb::LookupResult<'_, Mmap>) -> IpNet {
        result
            .network()
            .ok()
            .and_then(|n| IpNet::new(n.ip(), n.prefix()).ok())
            .filter(|n| n.contains(&ip) && (self.has_ipv4_subtree || ip.is_ipv6()))
            .unwrap_or_else(|| whole_space(ip))
    }

    /// Location and cell only, with decoded locations cached by the record's
    /// data offset: many networks share one record, and decoding is most of
    /// a lookup's cost.
    fn locate(&self, ip: IpAddr, cache: &mut LocationCache) -> (Option<Location>, IpNet) {
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
            Ok(Some(r)) => r.location.and_then(RawLocation::valid),
            _ => None,
        };
        cache.slots[slot] = Some((tag, loc));
        (loc, network)
    }
}

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

#[derive(Deserialize)]
struct RawLocationOnly {
    location: Option<RawLocation>,
}

impl RawLocation {
    fn valid(self) -> Option<Location> {
        let (lat, lon) = (self.latitude?, self.longitude?);
        let valid = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        valid.then_some(Location { lat, lon })
    }
}

fn code(s: &str) -> Option<[u8; 2]> {
    match *s.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// The only parts of a GeoIP2-City record we need; everything else (city
/// names in many languages, subdivisions, ...) is skipped, not decoded, and
/// strings borrow from the mapping.
#[derive(Deserialize)]
struct RawRecord<'a> {
    location: Option<RawLocation>,
    #[serde(borrow)]
    country: Option<RawCountry<'a>>,
    #[serde(borrow)]
    continent: Option<RawContinent<'a>>,
}

#[derive(Deserialize)]
struct RawLocation {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct RawCountry<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawContinent<'a> {
    code: Option<&'a str>,
}

/// A hot-reloadable geo database. Lookups take a lock-free snapshot of the
/// current reader, so they never block and never see a reader that is still
/// being loaded; a reload builds the new reader completely before swapping.
pub struct GeoDb {
    path: PathBuf,
    current: ArcSwap<Loaded>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("metadata", &self.metadata_summary())
            .finish()
    }
}

impl GeoDb {
    /// Opens and validates the database (metadata readable, tree in bounds).
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let loaded = Loaded::open(path)?;
        Ok(GeoDb {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// Never fails: addresses the database knows nothing about get
    /// `location: None` and the empty prefix around them. IPv4-mapped IPv6
    /// addresses are looked up (and reported) as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> GeoHit {
        self.current.load().lookup(normalise_ip(ip))
    }

    /// Location and cell of `ip` (normalised like [`GeoDb::lookup`]), with
    /// decoded locations cached in `cache`: the query path's lookup.
    pub fn locate(&self, ip: IpAddr, cache: &mut LocationCache) -> (Option<Location>, IpNet) {
        self.current.load().locate(normalise_ip(ip), cache)
    }

    /// Re-opens the file and swaps it in; on error the old data stays.
    pub fn reload(&self) -> Result<(), GeoError> {
        let loaded = Loaded::open(&self.path)?;
        // Debug only: callers decide how loudly a reload is announced.
        tracing::debug!(
            path = %self.path.display(),
            nodes = loaded.reader.metadata.node_count,
            build_epoch = loaded.reader.metadata.build_epoch,
            "geo database reloaded"
        );
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    /// Reloads when the file at the path is no longer the one loaded
    /// (mtime, size, device or inode differ). Returns whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let meta = fs::metadata(&self.path).map_err(|e| GeoError::io(&self.path, "stat", e))?;
        if FileIdentity::of(&meta) == self.current.load().identity {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// The file the database was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One line for logs, e.g. `GeoIP2-City, 1234 nodes, built 1700000000`.
    pub fn metadata_summary(&self) -> String {
        let loaded = self.current.load();
        let m = &loaded.reader.metadata;
        format!(
            "{}, {} nodes, built {}",
            m.database_type, m.node_count, m.build_epoch
        )
    }
}

#[cfg(test)]
mod tests;
