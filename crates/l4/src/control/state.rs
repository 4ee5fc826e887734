//! What the control plane has handed out: each service's VIP id and tag,
//! and a reference-counted index per backend address (and MAC) shared by
//! every service naming it. Kept in the state file, so a restarted daemon
//! knows what the pinned tables hold; cloned, changed and swapped in only
//! when an update succeeded.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ApplyError;
use crate::abi;
use crate::service::{ServiceSpec, Vip};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Service {
    pub(super) spec: ServiceSpec,
    pub(super) id: u32,
    pub(super) tag: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub(super) struct BackendId {
    pub(super) address: IpAddr,
    pub(super) mac: Option<[u8; 6]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Slot {
    pub(super) id: BackendId,
    pub(super) index: u32,
    refs: u32,
}

/// Allocation state; cloned, changed and swapped in only on success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) services: BTreeMap<Vip, Service>,
    pub(super) backends: Vec<Slot>,
    free_backends: VecDeque<u32>,
    next_backend: u32,
    pub(super) free_vips: VecDeque<u32>,
    next_vip: u32,
    next_tag: u32,
}

/// What an update of one VIP was given: the ids it runs under and the
/// backend indexes it names, gained and released.
pub(super) struct Allocation {
    /// The VIP's id (kept from the service it replaces).
    pub(super) id: u32,
    /// The VIP's tag (kept likewise; a new VIP gets a new one).
    pub(super) tag: u32,
    /// The backend index of each backend of the spec, in its order.
    pub(super) index: Vec<u32>,
    /// Indexes new to the data path, with the address and MAC they name.
    pub(super) fresh: Vec<(u32, IpAddr, Option<[u8; 6]>)>,
    /// Indexes of the replaced spec that no service names any more.
    pub(super) released: Vec<u32>,
}

impl State {
    fn slot_of(&self, id: &BackendId) -> Option<usize> {
        self.backends.iter().position(|s| s.id == *id)
    }

    /// Takes a reference on a backend, allocating its index if new.
    /// Returns (index, newly allocated).
    fn acquire(&mut self, id: BackendId) -> Result<(u32, bool), ApplyError> {
        if let Some(i) = self.slot_of(&id) {
            self.backends[i].refs += 1;
            return Ok((self.backends[i].index, false));
        }
        // Fresh indexes first, then the longest-free one, so a released
        // index (which stale connection-table entries may still name) is
        // reused as late as possible.
        let index = if self.next_backend < abi::MAX_BACKENDS {
            self.next_backend += 1;
            self.next_backend - 1
        } else {
            self.free_backends
                .pop_front()
                .ok_or(ApplyError::Full("backends"))?
        };
        self.backends.push(Slot { id, index, refs: 1 });
        Ok((index, true))
    }

    /// Drops a reference; returns the index when it was the last one.
    pub(super) fn release(&mut self, id: &BackendId) -> Option<u32> {
        let i = self.slot_of(id)?;
        self.backends[i].refs -= 1;
        if self.backends[i].refs > 0 {
            return None;
        }
        let index = self.backends.remove(i).index;
        self.free_backends.push_back(index);
        Some(index)
    }

    fn vip_id(&mut self) -> Result<u32, ApplyError> {
        if self.next_vip < abi::MAX_VIPS {
            self.next_vip += 1;
            return Ok(self.next_vip - 1);
        }
        self.free_vips
            .pop_front()
            .ok_or(ApplyError::Full("services"))
    }

    /// Takes `vip` out of the services and gives `spec` its ids and
    /// backend indexes: the old ones for what stays, new ones for what is
    /// new; the old spec's references are dropped. The caller puts the
    /// service back once the data path holds it.
    pub(super) fn allocate(
        &mut self,
        vip: &Vip,
        spec: &ServiceSpec,
    ) -> Result<Allocation, ApplyError> {
        let old = self.services.remove(vip);
        let (id, tag) = match &old {
            Some(s) => (s.id, s.tag),
            None => {
                self.next_tag = self.next_tag.wrapping_add(1).max(1);
                (self.vip_id()?, self.next_tag)
            }
        };
        let mut index = Vec::with_capacity(spec.backends.len());
        let mut fresh = Vec::new();
        for (b, bid) in spec.backends.iter().zip(ids(spec)) {
            let (i, new) = self.acquire(bid)?;
            index.push(i);
            if new {
                fresh.push((i, b.address, b.mac));
            }
        }
        let mut released = Vec::new();
        if let Some(o) = &old {
            for bid in ids(&o.spec) {
                released.extend(self.release(&bid));
            }
        }
        Ok(Allocation {
            id,
            tag,
            index,
            fresh,
            released,
        })
    }
}

/// The identities of a spec's backends, in its order.
pub(super) fn ids(spec: &ServiceSpec) -> Vec<BackendId> {
    spec.backends
        .iter()
        .map(|b| BackendId {
            address: b.address,
            mac: b.mac,
        })
        .collect()
}
