//! The search tree: built from the entries with the overlap rules and the
//! IPv4 alias, then numbered breadth-first with the records it reaches
//! encoded into the data section in the same walk.

use std::io;

use super::encoder::Encoder;
use super::{invalid, MmdbWriter, DATA, EMPTY, IPV4_PREFIX_BITS, MAPPED_PREFIX};

impl MmdbWriter {
    /// The tree of every entry, less specific first so more specific
    /// networks overwrite what lies under them.
    pub(super) fn build_tree(&self) -> io::Result<Tree> {
        let mut tree = Tree {
            nodes: vec![[EMPTY, EMPTY]],
        };
        // Inserting less specific networks first and letting each insert
        // overwrite what lies under it is what gives the order-independent
        // "more specific wins" rule; the stable sort keeps "later insert
        // wins" for the very same network.
        let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
        order.sort_by_key(|&i| self.entries[i as usize].prefix);
        for i in order {
            let entry = self.entries[i as usize];
            let value = DATA | entry.record;
            if entry.prefix == 0 {
                // The root is a node, not a record, so ::/0 becomes its two
                // halves. Nothing else is in the tree yet: /0 sorts first.
                tree.nodes[0] = [value, value];
                continue;
            }
            let (node, bit) = tree.slot(entry.addr, entry.prefix)?;
            tree.nodes[node][bit] = value;
        }

        #[cfg(test)]
        if self.skip_ipv4_subtree {
            return Ok(tree);
        }

        // Readers find the IPv4 root by following 96 zero bits; if the tree
        // stopped earlier they would misreport IPv4 prefixes (the maxminddb
        // crate's network() does), so the path always exists.
        let (node, bit) = tree.slot(0, IPV4_PREFIX_BITS)?;
        let ipv4_root = tree.nodes[node][bit];
        let (node, bit) = tree.slot(MAPPED_PREFIX, IPV4_PREFIX_BITS)?;
        tree.nodes[node][bit] = ipv4_root;
        Ok(tree)
    }
}

/// The search tree while building: each node's two children (see
/// [`EMPTY`] and [`DATA`]).
pub(super) struct Tree {
    pub(super) nodes: Vec<[u32; 2]>,
}

impl Tree {
    /// Walks to the child slot that holds `addr/prefix` (prefix >= 1),
    /// creating nodes on the way. A leaf met on the way becomes a node whose
    /// two children carry the leaf's value, so a less specific network keeps
    /// covering everything around the more specific one being inserted.
    pub(super) fn slot(&mut self, addr: u128, prefix: u8) -> io::Result<(usize, usize)> {
        let mut node = 0usize;
        for depth in 0..prefix - 1 {
            let bit = bit_at(addr, depth);
            let child = self.nodes[node][bit];
            node = if child == EMPTY || child & DATA != 0 {
                let id = self.nodes.len();
                if id >= DATA as usize {
                    return Err(invalid("search tree too large"));
                }
                self.nodes.push([child, child]);
                self.nodes[node][bit] = id as u32;
                id
            } else {
                child as usize
            };
        }
        Ok((node, bit_at(addr, prefix - 1)))
    }
}

fn bit_at(addr: u128, depth: u8) -> usize {
    ((addr >> (127 - depth)) & 1) as usize
}

/// Final node numbering and the encoded data section.
pub(super) struct Layout {
    /// Build-time node indices in output order.
    pub(super) order: Vec<u32>,
    /// Build-time node index → output node number.
    pub(super) new_ids: Vec<u32>,
    /// Record id → offset in the data section (only for referenced ones).
    pub(super) record_offsets: Vec<u32>,
    pub(super) data: Vec<u8>,
}

impl Layout {
    pub(super) fn new(tree: &Tree, writer: &MmdbWriter) -> io::Result<Self> {
        const UNSEEN: u32 = u32::MAX;
        // Numbering by a breadth-first walk from the root drops nodes that an
        // overwrite left unreachable, copes with the alias making the tree a
        // DAG, and keeps the hot top levels together in the file.
        let mut new_ids = vec![UNSEEN; tree.nodes.len()];
        let mut order = Vec::with_capacity(tree.nodes.len());
        let mut record_offsets = vec![UNSEEN; writer.records.len()];
        let mut enc = Encoder::default();
        new_ids[0] = 0;
        order.push(0u32);
        let mut next = 0;
        while let Some(&node) = order.get(next) {
            next += 1;
            for child in tree.nodes[node as usize] {
                if child == EMPTY {
                    continue;
                }
                if child & DATA != 0 {
                    let id = (child & !DATA) as usize;
                    if record_offsets[id] == UNSEEN {
                        record_offsets[id] = u32::try_from(enc.buf.len())
                            .map_err(|_| invalid("data section too large"))?;
                        enc.record(writer, &writer.records[id])?;
                    }
                } else if new_ids[child as usize] == UNSEEN {
                    new_ids[child as usize] = order.len() as u32;
                    order.push(child);
                }
            }
        }
        Ok(Layout {
            order,
            new_ids,
            record_offsets,
            data: enc.buf,
        })
    }
}
