//! The L4 control plane's state and the only code that writes the data
//! path's tables. A service update is computed in full first (the Maglev
//! table, backend indexes), then written in an order that a packet can
//! never observe half-done: new backend entries, a freshly filled inner
//! table, one swap of the outer `rings` entry, then the VIP's metadata.
//! The call returns once the swap is live. State is kept in a JSON file so
//! a restarted daemon knows what the pinned tables hold.
//!
//! - `state`: the ids and backend indexes handed out (the state file);
//! - `flows`: the connection table, read and swept through mmap;
//! - `view`: what the API reads: services with slot counts, counters.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

use super::abi;
use super::dataplane::Maps;
use super::service::{address_key, Forwarding, ServiceSpec, Vip};
use super::sys;
use boltz_core::maglev;

mod flows;
mod state;
mod view;

use state::{ids, Allocation, Service, State};
pub use view::Counters;

/// Why an update was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("version {got} is not newer than the applied version {have}")]
    Stale { got: u64, have: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("too many {0}")]
    Full(&'static str),
    #[error("writing the data path: {0}")]
    Kernel(#[from] io::Error),
}

/// What an accepted update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
}

/// The balancer's control plane over its pinned maps.
pub struct Control {
    maps: Maps,
    state: Mutex<State>,
    /// The live table of each VIP as backend indexes (what the kernel
    /// holds); the base for the next rebuild. Locked after `state`.
    live: Mutex<HashMap<Vip, Vec<u32>>>,
    state_file: Option<PathBuf>,
}

impl Control {
    /// Takes over `maps`. With `state_file`, the services recorded there
    /// are what the maps hold (a restart); without it, or when it does not
    /// exist yet, the maps are cleared of VIPs.
    pub fn new(maps: Maps, state_file: Option<PathBuf>) -> io::Result<Control> {
        let state = match &state_file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                serde_json::from_str(&text).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
                })?
            }
            _ => State::default(),
        };
        let b = Control {
            maps,
            state: Mutex::new(state),
            live: Mutex::new(HashMap::new()),
            state_file,
        };
        b.drop_unknown_vips()?;
        b.read_live_tables()?;
        Ok(b)
    }

    /// After a restart: the tables the pinned maps hold, so the next
    /// update moves slots relative to what packets actually use.
    fn read_live_tables(&self) -> io::Result<()> {
        let st = self.state.lock().expect("l4 state");
        let mut live = self.live.lock().expect("l4 tables");
        for (vip, s) in &st.services {
            let mut id = [0u8; 4];
            if !sys::lookup(self.maps.rings.as_fd(), &s.id.to_ne_bytes(), &mut id)? {
                continue;
            }
            let fd = sys::map_fd_by_id(u32::from_ne_bytes(id))?;
            let size = sys::array_read_u32(fd.as_fd(), 1)?[0];
            let all = sys::array_read_u32(fd.as_fd(), size + 1)?;
            live.insert(*vip, all[1..].to_vec());
        }
        Ok(())
    }

    /// Removes VIP entries the state does not know (left by a daemon whose
    /// state file was lost): better to pass their packets to the kernel
    /// than to forward by tables nobody can describe.
    fn drop_unknown_vips(&self) -> io::Result<()> {
        let st = self.state.lock().expect("l4 state");
        let known: Vec<[u8; 20]> = st.services.keys().map(Vip::map_key).collect();
        let mut stale = Vec::new();
        let mut key = [0u8; 20];
        let mut prev: Option<[u8; 20]> = None;
        while sys::next_key(
            self.maps.vips.as_fd(),
            prev.as_ref().map(|k| &k[..]),
            &mut key,
        )? {
            if !known.contains(&key) {
                stale.push(key);
            }
            prev = Some(key);
        }
        for k in stale {
            tracing::warn!("removing a VIP the state file does not describe");
            sys::delete(self.maps.vips.as_fd(), &k)?;
        }
        Ok(())
    }

    /// Sets the outer source addresses, our MAC and the flood limit.
    pub fn configure(
        &self,
        src4: [u8; 4],
        src6: [u8; 16],
        smac: [u8; 6],
        flood_limit: u64,
    ) -> io::Result<()> {
        let cfg = abi::config(src4, src6, smac, flood_limit, self.maps.flow_sets);
        sys::update(
            self.maps.config.as_fd(),
            &0u32.to_ne_bytes(),
            &cfg,
            sys::BPF_ANY,
        )
    }

    fn persist(&self, st: &State) -> io::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(st).map_err(io::Error::other)?,
        )?;
        std::fs::rename(&tmp, path)
    }

    /// Makes `spec` the live state of `vip`; returns once packets use it.
    pub fn apply(&self, vip: Vip, spec: ServiceSpec) -> Result<Applied, ApplyError> {
        let mut guard = self.state.lock().expect("l4 state");
        if let Some(cur) = guard.services.get(&vip) {
            if spec.version == cur.spec.version && spec == cur.spec {
                return Ok(Applied::Unchanged);
            }
            if spec.version <= cur.spec.version {
                return Err(ApplyError::Stale {
                    got: spec.version,
                    have: cur.spec.version,
                });
            }
        }
        let mut live = self.live.lock().expect("l4 tables");
        let table = rebuild(&guard, live.get(&vip).map(Vec::as_slice), &spec)?;
        let mut st = guard.clone();
        let a = st.allocate(&vip, &spec)?;
        // Everything is decided; write in the order packets can bear.
        let slots: Option<Vec<u32>> =
            table.map(|t| t.iter().map(|&m| a.index[m as usize]).collect());
        self.write(&vip, &spec, &a, slots.as_deref())?;
        st.services.insert(
            vip,
            Service {
                spec,
                id: a.id,
                tag: a.tag,
            },
        );
        self.persist(&st)?;
        *guard = st;
        match slots {
            Some(t) => live.insert(vip, t),
            None => live.remove(&vip),
        };
        Ok(Applied::Changed)
    }

    /// Writes a decided update in the order packets can bear: the new
    /// inner table (`slots`: backend index per slot; `None` when no backend
    /// takes new flows) and the entries of new backends, which no packet
    /// sees yet, then the swap of the outer entry, the VIP's metadata, and
    /// last the retirement of backends no service names any more.
    fn write(
        &self,
        vip: &Vip,
        spec: &ServiceSpec,
        a: &Allocation,
        slots: Option<&[u32]>,
    ) -> Result<(), ApplyError> {
        let inner = slots.map(|t| inner_table(spec.ring_size, t)).transpose()?;
        for (i, addr, mac) in &a.fresh {
            let entry = abi::backend(*addr, *mac, abi::BACKEND_ACTIVE);
            sys::update(
                self.maps.backends.as_fd(),
                &i.to_ne_bytes(),
                &entry,
                sys::BPF_ANY,
            )?;
        }
        let key = a.id.to_ne_bytes();
        match &inner {
            Some(fd) => {
                let v = (fd.as_raw_fd() as u32).to_ne_bytes();
                sys::update(self.maps.rings.as_fd(), &key, &v, sys::BPF_ANY)?;
            }
            None => {
                sys::delete(self.maps.rings.as_fd(), &key)?;
            }
        }
        let flags = if spec.forwarding == Forwarding::L2 {
            abi::VIP_L2
        } else {
            0
        };
        sys::update(
            self.maps.vips.as_fd(),
            &vip.map_key(),
            &abi::vip_meta(a.id, a.tag, flags),
            sys::BPF_ANY,
        )?;
        // Backends no service uses any more: their connection-table
        // entries stop matching, those flows are re-balanced.
        for &i in &a.released {
            if !a.index.contains(&i) {
                self.retire_backend(i)?;
            }
        }
        Ok(())
    }

    /// Marks backend index `i` unused: connection-table entries naming it
    /// stop matching at once (their flows are balanced again) and are
    /// swept, so a backend that gets the index later inherits no flows.
    fn retire_backend(&self, i: u32) -> io::Result<()> {
        let key = i.to_ne_bytes();
        sys::update(self.maps.backends.as_fd(), &key, &[0u8; 24], sys::BPF_ANY)?;
        self.sweep_flows(|s| s.backend == i)?;
        // Forget its cached next hop on every CPU (32-byte values).
        let zeros = vec![0u8; 32 * self.maps.cpus];
        sys::update(self.maps.nexthops.as_fd(), &key, &zeros, sys::BPF_ANY)
    }

    /// Removes a VIP: its packets pass to the kernel from now on.
    pub fn remove(&self, vip: &Vip) -> Result<bool, ApplyError> {
        let mut guard = self.state.lock().expect("l4 state");
        let mut st = guard.clone();
        let Some(old) = st.services.remove(vip) else {
            return Ok(false);
        };
        let vk = vip.map_key();
        sys::delete(self.maps.vips.as_fd(), &vk)?;
        sys::delete(self.maps.rings.as_fd(), &old.id.to_ne_bytes())?;
        for bid in ids(&old.spec) {
            if let Some(i) = st.release(&bid) {
                self.retire_backend(i)?;
            }
        }
        // Its flows no longer match (the fingerprint is seeded with the
        // tag); sweeping them frees their slots.
        self.sweep_flows(|s| s.vip == old.id)?;
        st.free_vips.push_back(old.id);
        self.persist(&st)?;
        *guard = st;
        self.live.lock().expect("l4 tables").remove(vip);
        Ok(true)
    }

    /// Addresses of backends reached through the FIB (no MAC given).
    pub fn routed_backends(&self) -> Vec<IpAddr> {
        let st = self.state.lock().expect("l4 state");
        st.backends
            .iter()
            .filter(|s| s.id.mac.is_none())
            .map(|s| s.id.address)
            .collect()
    }

    /// The live table of `vip`: backend index per slot (slot 1.. in the map).
    pub fn live_table(&self, vip: &Vip) -> Option<Vec<u32>> {
        self.live.lock().expect("l4 tables").get(vip).cloned()
    }

    /// The backend index the data path uses for `address` (tests).
    pub fn backend_index(&self, address: IpAddr) -> Option<u32> {
        let st = self.state.lock().expect("l4 state");
        st.backends
            .iter()
            .find(|s| s.id.address == address)
            .map(|s| s.index)
    }
}

/// The Maglev table of `spec` (slot → position in `spec.backends`), seeded
/// with the VIP's `live` table so slots move only as far as the new shares
/// require; `None` when no backend takes new flows.
fn rebuild(
    st: &State,
    live: Option<&[u32]>,
    spec: &ServiceSpec,
) -> Result<Option<Vec<u32>>, ApplyError> {
    if !spec.has_up() {
        return Ok(None);
    }
    // Keys by backend index, so the live table can seed the rebuild.
    let mut by_index: Vec<Vec<u8>> = vec![Vec::new(); abi::MAX_BACKENDS as usize];
    for slot in &st.backends {
        by_index[slot.index as usize] = address_key(slot.id.address);
    }
    let keys: Vec<&[u8]> = by_index.iter().map(Vec::as_slice).collect();
    let prev = live.map(|t| maglev::Previous {
        table: t,
        keys: &keys,
    });
    spec.table(prev)
        .map(Some)
        .map_err(|e| ApplyError::Invalid(e.to_string()))
}

/// A new inner table for `rings`: the size `ring_size`, then `slots`,
/// written through mmap before any packet can see it.
fn inner_table(ring_size: u32, slots: &[u32]) -> io::Result<OwnedFd> {
    let mut values = Vec::with_capacity(slots.len() + 1);
    values.push(ring_size);
    values.extend_from_slice(slots);
    let flags = sys::BPF_F_INNER_MAP | sys::BPF_F_MMAPABLE;
    let fd = sys::array_create("boltz_ring", 4, values.len() as u32, flags)?;
    sys::array_mmap_fill_u32(fd.as_fd(), &values)?;
    Ok(fd)
}
