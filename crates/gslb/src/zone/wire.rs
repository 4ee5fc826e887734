//! The fast path's view of the zones: every name of every zone, keyed by its
//! lower-case wire form, with its static RRsets already encoded as answer
//! bytes. Built once per zone load (not per query, not per health change),
//! so answering a static name is a hash lookup and a memcpy.
//!
//! Answer templates use a compression pointer to offset 12 as owner name:
//! the question is always the first name of a response, so the answer's
//! owner is the query's own spelling (case echoed) without being written.

use std::collections::HashMap;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rustc_hash::FxBuildHasher;

use super::{Steered, ZoneSet};

/// Static answer bytes of one RRset.
#[derive(Clone, Debug)]
pub struct Template {
    pub rtype: u16,
    pub count: u16,
    pub bytes: Box<[u8]>,
}

/// What the fast path knows about one name.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Index into `ZoneSet::zones`.
    pub zone: usize,
    /// CNAME, zone cut, or below a cut: the general handler decides.
    pub slow: bool,
    pub rrsets: Vec<Template>,
    pub steered: Option<Steered>,
}

impl Entry {
    pub fn rrset(&self, rtype: u16) -> Option<&Template> {
        self.rrsets.iter().find(|t| t.rtype == rtype)
    }
}

/// Per zone: the SOA record for negative answers, ready to copy.
#[derive(Clone, Debug)]
pub struct ZoneWire {
    pub negative_soa: Box<[u8]>,
}

#[derive(Clone, Debug, Default)]
pub struct FastIndex {
    names: HashMap<Box<[u8]>, Entry, FxBuildHasher>,
    pub zones: Vec<ZoneWire>,
}

fn encode_uncompressed(r: &Record) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    r.emit(&mut enc).ok()?;
    Some(buf)
}

/// Lower-case wire form of a name (labels with length bytes, final 0).
pub fn wire_name(n: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(n.len() + 1);
    for label in n.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

impl FastIndex {
    pub fn build(zones: &ZoneSet) -> FastIndex {
        let mut names: HashMap<Box<[u8]>, Entry, FxBuildHasher> = HashMap::default();
        let mut wires = Vec::with_capacity(zones.zones.len());
        for (zi, zone) in zones.zones.iter().enumerate() {
            let mut soa = zone.soa.clone();
            soa.ttl = zone.negative_ttl.min(zone.soa.ttl);
            wires.push(ZoneWire {
                negative_soa: encode_uncompressed(&soa)
                    .unwrap_or_default()
                    .into_boxed_slice(),
            });
            for (lname, node) in &zone.nodes {
                // A name that a more specific zone also covers belongs to it.
                if zones.find(lname).map(|(i, _)| i) != Some(zi) {
                    continue;
                }
                let name = Name::from(lname.clone());
                let owner_len = wire_name(&name).len();
                let slow =
                    node.rrset(RecordType::CNAME).is_some() || zone.delegation_for(lname).is_some();
                let mut rrsets = Vec::with_capacity(node.rrsets.len());
                for set in &node.rrsets {
                    let mut bytes = Vec::new();
                    for r in &set.records {
                        let Some(enc) = encode_uncompressed(r) else {
                            continue;
                        };
                        bytes.extend_from_slice(&[0xc0, 0x0c]);
                        bytes.extend_from_slice(&enc[owner_len..]);
                    }
                    rrsets.push(Template {
                        rtype: u16::from(set.rtype),
                        count: set.records.len() as u16,
                        bytes: bytes.into_boxed_slice(),
                    });
                }
                names.insert(
                    wire_name(&name).into_boxed_slice(),
                    Entry {
                        zone: zi,
                        slow,
                        rrsets,
                        steered: node.steered.clone(),
                    },
                );
            }
        }
        FastIndex {
            names,
            zones: wires,
        }
    }

    /// The entry of a lower-case wire name.
    #[inline]
    pub fn get(&self, wire: &[u8]) -> Option<&Entry> {
        self.names.get(wire)
    }
}
