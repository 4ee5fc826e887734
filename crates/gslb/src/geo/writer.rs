//! A pure-Rust writer for MaxMind DB files (`.mmdb`, binary format 2.0)
//! holding GeoIP2-City shaped records, so the databases boltz builds can be
//! read by any MaxMind DB reader (the `maxminddb` crate, libmaxminddb as used
//! by gdnsd's geoip plugin and knot's geoip module).
//!
//! Layout decisions:
//! * The search tree is always IPv6 (`ip_version` 6). IPv4 networks live at
//!   `::/96`, as in MaxMind's own databases, and `::ffff:0:0/96` is an alias
//!   of that subtree so IPv4-mapped addresses resolve to the IPv4 data.
//!   Consequently IPv6 networks inside `::/96` share space with IPv4.
//! * Overlap rule: the more specific network wins inside its range, whatever
//!   the insertion order. Inserting the very same network twice keeps the
//!   record of the later insert. IPv6 networks inside `::ffff:0:0/96` are
//!   stored as the IPv4 networks they map, so the two spellings are the same
//!   network for these rules.
//! * Identical records are stored once in the data section, and map keys are
//!   written once and referenced by pointers afterwards, which keeps a
//!   database of a million networks in the tens of megabytes.
//!
//! This file holds the writer (records in, file out); `tree` builds the
//! search tree and numbers its nodes, `encoder` writes the data format.

mod encoder;
mod tree;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use self::encoder::{Encoder, TYPE_ARRAY, TYPE_MAP, TYPE_UINT16, TYPE_UINT32, TYPE_UINT64};
use self::tree::Layout;

/// `database_type` written into the metadata; readers such as gdnsd choose
/// their decoding by it, so it names the record layout we imitate.
pub const DATABASE_TYPE: &str = "GeoIP2-City";

/// One location record, stored in GeoIP2-City shape:
/// `{"location": {"latitude", "longitude"}, "country": {"iso_code"},
/// "continent": {"code"}}`. Empty or absent country/continent are omitted.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoRecord {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// ISO country code, if known.
    pub country: Option<String>,
    /// Continent code, if known.
    pub continent: Option<String>,
}

impl GeoRecord {
    /// A record; empty country or continent codes mean "absent".
    pub fn new(latitude: f64, longitude: f64, country: &str, continent: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        GeoRecord {
            latitude,
            longitude,
            country: opt(country),
            continent: opt(continent),
        }
    }
}

/// Width of one search-tree record. 28 bits covers databases of up to
/// ~268M nodes plus data, which is more than any realistic input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSize {
    Bits28,
    Bits32,
}

impl RecordSize {
    fn bits(self) -> u16 {
        match self {
            RecordSize::Bits28 => 28,
            RecordSize::Bits32 => 32,
        }
    }

    fn max_value(self) -> u64 {
        (1u64 << self.bits()) - 1
    }
}

/// Builds a GeoIP2-City compatible MaxMind DB in memory and serialises it.
///
/// Inserting is cheap (an append plus record interning); the search tree is
/// only built in [`MmdbWriter::write_to`], which is what makes the overlap
/// rule independent of insertion order.
#[derive(Debug)]
pub struct MmdbWriter {
    description: String,
    record_size: Option<RecordSize>,
    build_epoch: Option<u64>,
    entries: Vec<Entry>,
    records: Vec<RecordKey>,
    record_ids: HashMap<RecordKey, u32>,
    codes: Vec<Box<str>>,
    code_ids: HashMap<Box<str>, u32>,
    #[cfg(test)]
    skip_ipv4_subtree: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Network address in the IPv6 tree (IPv4 already moved to `::/96`).
    addr: u128,
    prefix: u8,
    record: u32,
}

/// Interned form of a [`GeoRecord`]: coordinates as bit patterns so equality
/// is exact, strings as ids (0 = absent) so the key needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RecordKey {
    lat: u64,
    lon: u64,
    country: u32,
    continent: u32,
}

/// Tree child values while building: 0 is "no data" (the root is never a
/// child, so 0 cannot mean node 0), values with the top bit set are record
/// ids, anything else is a node index.
const EMPTY: u32 = 0;
const DATA: u32 = 1 << 31;

const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
const DATA_SEPARATOR: [u8; 16] = [0; 16];

const IPV4_PREFIX_BITS: u8 = 96;
const MAPPED_PREFIX: u128 = 0xffff_u128 << 32;

impl MmdbWriter {
    /// `description` goes into the metadata as the English description.
    pub fn new(description: impl Into<String>) -> Self {
        MmdbWriter {
            description: description.into(),
            record_size: None,
            build_epoch: None,
            entries: Vec::new(),
            records: Vec::new(),
            record_ids: HashMap::new(),
            codes: Vec::new(),
            code_ids: HashMap::new(),
            #[cfg(test)]
            skip_ipv4_subtree: false,
        }
    }

    /// Forces a record size. Without it the smallest one that fits is used;
    /// a forced size that is too small makes `write_to` fail.
    pub fn with_record_size(mut self, size: RecordSize) -> Self {
        self.record_size = Some(size);
        self
    }

    /// Overrides `build_epoch` (seconds since the Unix epoch), e.g. for
    /// reproducible output. Defaults to the time of `write_to`.
    pub fn with_build_epoch(mut self, epoch: u64) -> Self {
        self.build_epoch = Some(epoch);
        self
    }

    /// Leaves out the `::/96` path and the mapped alias, to produce the kind
    /// of tree third-party writers may emit.
    #[cfg(test)]
    pub(crate) fn without_ipv4_subtree(mut self) -> Self {
        self.skip_ipv4_subtree = true;
        self
    }

    /// Number of `insert` calls so far (repeats of a network included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No networks added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of distinct records inserted so far.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Adds a network. Host bits beyond the prefix are ignored. See the
    /// module docs for how overlapping networks are resolved.
    pub fn insert(&mut self, net: IpNet, record: GeoRecord) {
        let net = canonical_net(net);
        let (addr, prefix) = match net {
            IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                n.prefix_len() + IPV4_PREFIX_BITS,
            ),
            IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
        };
        let record = self.intern_record(&record);
        self.entries.push(Entry {
            addr,
            prefix,
            record,
        });
    }

    fn intern_record(&mut self, record: &GeoRecord) -> u32 {
        // Adding 0.0 turns -0.0 into 0.0, so the two zeros share a record.
        let key = RecordKey {
            lat: (record.latitude + 0.0).to_bits(),
            lon: (record.longitude + 0.0).to_bits(),
            country: self.intern_code(record.country.as_deref()),
            continent: self.intern_code(record.continent.as_deref()),
        };
        if let Some(&id) = self.record_ids.get(&key) {
            return id;
        }
        // Ids beyond DATA would collide with the flag; write_to rejects such
        // a record count, so wrapping here cannot produce a wrong file.
        let id = self.records.len() as u32;
        self.records.push(key);
        self.record_ids.insert(key, id);
        id
    }

    fn intern_code(&mut self, code: Option<&str>) -> u32 {
        let Some(code) = code.filter(|c| !c.is_empty()) else {
            return 0;
        };
        if let Some(&id) = self.code_ids.get(code) {
            return id;
        }
        self.codes.push(code.into());
        let id = self.codes.len() as u32;
        self.code_ids.insert(code.into(), id);
        id
    }

    fn code(&self, id: u32) -> Option<&str> {
        if id == 0 {
            return None;
        }
        self.codes.get(id as usize - 1).map(|c| &**c)
    }

    /// Serialises the database. Fails only on I/O errors or when the
    /// database does not fit the (forced) record size.
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        if self.records.len() >= DATA as usize {
            return Err(invalid("too many distinct records"));
        }
        let tree = self.build_tree()?;
        let layout = Layout::new(&tree, self)?;

        let node_count = layout.order.len() as u64;
        let max_value = node_count + DATA_SEPARATOR.len() as u64 + layout.data.len() as u64;
        let record_size = match self.record_size {
            Some(size) if max_value > size.max_value() => {
                return Err(invalid(format!(
                    "database needs values up to {max_value}, too large for {}-bit records",
                    size.bits()
                )));
            }
            Some(size) => size,
            None if max_value <= RecordSize::Bits28.max_value() => RecordSize::Bits28,
            None if max_value <= RecordSize::Bits32.max_value() => RecordSize::Bits32,
            None => return Err(invalid("database too large for the MaxMind DB format")),
        };

        let encode = |child: u32| -> u64 {
            if child == EMPTY {
                node_count
            } else if child & DATA != 0 {
                let offset = layout.record_offsets[(child & !DATA) as usize];
                node_count + DATA_SEPARATOR.len() as u64 + u64::from(offset)
            } else {
                u64::from(layout.new_ids[child as usize])
            }
        };

        // Callers may hand us an unbuffered file, so emit the tree in chunks
        // rather than seven bytes at a time.
        let mut chunk = Vec::with_capacity(64 * 1024);
        for &old in &layout.order {
            let [l, r] = tree.nodes[old as usize];
            let (l, r) = (encode(l), encode(r));
            match record_size {
                RecordSize::Bits28 => {
                    chunk.extend_from_slice(&(l as u32).to_be_bytes()[1..]);
                    chunk.push((((l >> 24) as u8 & 0x0f) << 4) | ((r >> 24) as u8 & 0x0f));
                    chunk.extend_from_slice(&(r as u32).to_be_bytes()[1..]);
                }
                RecordSize::Bits32 => {
                    chunk.extend_from_slice(&(l as u32).to_be_bytes());
                    chunk.extend_from_slice(&(r as u32).to_be_bytes());
                }
            }
            if chunk.len() >= 60 * 1024 {
                w.write_all(&chunk)?;
                chunk.clear();
            }
        }
        w.write_all(&chunk)?;
        w.write_all(&DATA_SEPARATOR)?;
        w.write_all(&layout.data)?;
        w.write_all(METADATA_MARKER)?;
        w.write_all(&self.metadata(node_count, record_size)?)?;
        w.flush()
    }

    fn metadata(&self, node_count: u64, record_size: RecordSize) -> io::Result<Vec<u8>> {
        let epoch = self.build_epoch.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let mut e = Encoder::default();
        // Keys are inlined (no pointers): readers decode metadata on its own,
        // outside the data section that pointers are relative to.
        e.header(TYPE_MAP, 9)?;
        e.string("binary_format_major_version")?;
        e.uint(TYPE_UINT16, 2)?;
        e.string("binary_format_minor_version")?;
        e.uint(TYPE_UINT16, 0)?;
        e.string("build_epoch")?;
        e.uint(TYPE_UINT64, epoch)?;
        e.string("database_type")?;
        e.string(DATABASE_TYPE)?;
        e.string("description")?;
        e.header(TYPE_MAP, 1)?;
        e.string("en")?;
        e.string(&self.description)?;
        e.string("ip_version")?;
        e.uint(TYPE_UINT16, 6)?;
        e.string("languages")?;
        e.header(TYPE_ARRAY, 1)?;
        e.string("en")?;
        e.string("node_count")?;
        e.uint(TYPE_UINT32, node_count)?;
        e.string("record_size")?;
        e.uint(TYPE_UINT16, u64::from(record_size.bits()))?;
        Ok(e.buf)
    }
}

/// Normalises a network the way the writer stores it: host bits cleared,
/// IPv6 networks inside `::ffff:0:0/96` turned into the IPv4 network they map.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(n) if n.prefix_len() >= IPV4_PREFIX_BITS => match n.network().to_ipv4_mapped() {
            Some(v4) => {
                Ipv4Net::new(v4, n.prefix_len() - IPV4_PREFIX_BITS).map_or(IpNet::V6(n), IpNet::V4)
            }
            None => IpNet::V6(n),
        },
        other => other,
    }
}

/// Whole address space of the family of `ip`.
pub(crate) fn whole_space(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

#[cfg(test)]
mod tests;
