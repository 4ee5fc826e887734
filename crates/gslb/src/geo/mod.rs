//! IP geolocation for the DNS query path: a memory-mapped MaxMind DB
//! (GeoIP2-City layout, e.g. built by [`build_from_csv`]) that answers
//! lookups without blocking or failing and can be hot-reloaded while
//! lookups run on other threads.
//!
//! This file holds [`GeoDb`], the handle the server shares; `reader` opens
//! and checks one database file and does full lookups, `cache` is the query
//! path's cached lookup, `record` what lookups return, `error` the errors.
//! [`writer`] produces `.mmdb` files, [`csv`] builds them from a simple CSV
//! source.

mod cache;
pub mod csv;
mod error;
mod reader;
mod record;
pub mod writer;

pub use self::cache::LocationCache;
pub use self::csv::{build_from_csv, BuildStats};
pub use self::error::GeoError;
pub use self::record::{GeoHit, Location};
pub use self::writer::{GeoRecord, MmdbWriter};

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

use self::reader::{FileIdentity, Loaded};

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to IPv4, leaves
/// everything else alone.
pub fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
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

    /// Every IPv4 network the database holds a record for: the address
    /// space a simulation draws its clients from.
    pub fn ipv4_networks(&self) -> Vec<IpNet> {
        self.current.load().ipv4_networks()
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
