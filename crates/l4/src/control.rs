//! The L4 control plane's state and the only code that writes the data
//! path's tables. A service update is computed in full first (the Maglev
//! table, backend indexes), then written in an order that a packet can
//! never observe half-done: new backend entries, a freshly filled inner
//! table, one swap of the outer `rings` entry, then the VIP's metadata.
//! The call returns once the swap is live. State is kept in a JSON file so
//! a restarted daemon knows what the pinned tables hold.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::abi;
use super::dataplane::Maps;
use super::service::{address_key, Forwarding, ServiceSpec, Vip};
use super::sys;
use boltz_core::maglev;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Service {
    spec: ServiceSpec,
    id: u32,
    tag: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
struct BackendId {
    address: IpAddr,
    mac: Option<[u8; 6]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slot {
    id: BackendId,
    index: u32,
    refs: u32,
}

/// Allocation state; cloned, changed and swapped in only on success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    services: BTreeMap<Vip, Service>,
    backends: Vec<Slot>,
    free_backends: VecDeque<u32>,
    next_backend: u32,
    free_vips: VecDeque<u32>,
    next_vip: u32,
    next_tag: u32,
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
    fn release(&mut self, id: &BackendId) -> Option<u32> {
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
}

fn ids(spec: &ServiceSpec) -> Vec<BackendId> {
    spec.backends
        .iter()
        .map(|b| BackendId {
            address: b.address,
            mac: b.mac,
        })
        .collect()
}

/// One VIP as reported by `GET /v1/services`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub vip: Vip,
    #[serde(flatten)]
    pub spec: ServiceSpec,
    /// Slots each backend owns in the live table (same order as `backends`).
    pub slots: Vec<u32>,
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
        let table = if spec.has_up() {
            // Keys by backend index, so the live table can seed the rebuild.
            let mut by_index: Vec<Vec<u8>> = vec![Vec::new(); abi::MAX_BACKENDS as usize];
            for slot in &guard.backends {
                by_index[slot.index as usize] = address_key(slot.id.address);
            }
            let keys: Vec<&[u8]> = by_index.iter().map(Vec::as_slice).collect();
            let prev = live.get(&vip).map(|t| maglev::Previous {
                table: t,
                keys: &keys,
            });
            Some(
                spec.table(prev)
                    .map_err(|e| ApplyError::Invalid(e.to_string()))?,
            )
        } else {
            None
        };
        let mut st = guard.clone();
        let old = st.services.remove(&vip);
        let (id, tag) = match &old {
            Some(s) => (s.id, s.tag),
            None => {
                st.next_tag = st.next_tag.wrapping_add(1).max(1);
                (st.vip_id()?, st.next_tag)
            }
        };
        let mut index = Vec::with_capacity(spec.backends.len());
        let mut fresh = Vec::new();
        for (b, bid) in spec.backends.iter().zip(ids(&spec)) {
            let (i, new) = st.acquire(bid)?;
            index.push(i);
            if new {
                fresh.push((i, b.address, b.mac));
            }
        }
        let mut retired = Vec::new();
        if let Some(o) = &old {
            for bid in ids(&o.spec) {
                retired.extend(st.release(&bid));
            }
        }
        // Everything is decided; write in the order packets can bear.
        let slots: Option<Vec<u32>> = table.map(|t| t.iter().map(|&m| index[m as usize]).collect());
        let inner = match &slots {
            Some(t) => {
                let mut values = Vec::with_capacity(t.len() + 1);
                values.push(spec.ring_size);
                values.extend_from_slice(t);
                let flags = sys::BPF_F_INNER_MAP | sys::BPF_F_MMAPABLE;
                let fd = sys::array_create("boltz_ring", 4, values.len() as u32, flags)?;
                sys::array_mmap_fill_u32(fd.as_fd(), &values)?;
                Some(fd)
            }
            None => None,
        };
        for (i, addr, mac) in &fresh {
            let entry = abi::backend(*addr, *mac, abi::BACKEND_ACTIVE);
            sys::update(
                self.maps.backends.as_fd(),
                &i.to_ne_bytes(),
                &entry,
                sys::BPF_ANY,
            )?;
        }
        let key = id.to_ne_bytes();
        match &inner {
            Some(fd) => {
                let v = (std::os::fd::AsRawFd::as_raw_fd(fd) as u32).to_ne_bytes();
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
        let vk = vip.map_key();
        sys::update(
            self.maps.vips.as_fd(),
            &vk,
            &abi::vip_meta(id, tag, flags),
            sys::BPF_ANY,
        )?;
        // Backends no service uses any more: their connection-table
        // entries stop matching, those flows are re-balanced.
        for i in retired {
            if !index.contains(&i) {
                self.retire_backend(i)?;
            }
        }
        st.services.insert(vip, Service { spec, id, tag });
        self.persist(&st)?;
        *guard = st;
        match slots {
            Some(t) => live.insert(vip, t),
            None => live.remove(&vip),
        };
        Ok(Applied::Changed)
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

    /// Every service with the slots each backend holds.
    pub fn services(&self) -> Vec<ServiceView> {
        let st = self.state.lock().expect("l4 state");
        let live = self.live.lock().expect("l4 tables");
        st.services
            .iter()
            .map(|(vip, s)| {
                let mut per_index: HashMap<u32, u32> = HashMap::new();
                for &i in live.get(vip).map(Vec::as_slice).unwrap_or_default() {
                    *per_index.entry(i).or_insert(0) += 1;
                }
                let slots = s
                    .spec
                    .backends
                    .iter()
                    .map(|b| {
                        let i = st
                            .backends
                            .iter()
                            .find(|x| x.id.address == b.address)
                            .map(|x| x.index);
                        i.and_then(|i| per_index.get(&i).copied()).unwrap_or(0)
                    })
                    .collect();
                ServiceView {
                    vip: *vip,
                    spec: s.spec.clone(),
                    slots,
                }
            })
            .collect()
    }

    /// Each service's `capacity_pps` (cheap: no table walk, unlike
    /// [`Self::services`]).
    pub fn capacities(&self) -> BTreeMap<Vip, Option<f64>> {
        let st = self.state.lock().expect("l4 state");
        st.services
            .iter()
            .map(|(v, s)| (*v, s.spec.capacity_pps))
            .collect()
    }

    /// Sums of the per-CPU counters: global, per VIP, per backend.
    pub fn counters(&self) -> io::Result<Counters> {
        let st = self.state.lock().expect("l4 state");
        let mut global = BTreeMap::new();
        for (i, name) in abi::COUNTERS.iter().enumerate() {
            global.insert(*name, self.percpu_sum(&self.maps.stats, i as u32, 1)?[0]);
        }
        let mut vips = BTreeMap::new();
        let mut backends = BTreeMap::new();
        for (vip, s) in &st.services {
            let c = self.percpu_sum(&self.maps.vip_stats, s.id, 3)?;
            vips.insert(*vip, [c[0], c[1], c[2]]);
        }
        for slot in &st.backends {
            let c = self.percpu_sum(&self.maps.backend_stats, slot.index, 3)?;
            backends.insert(slot.id.address, [c[0], c[1], c[2]]);
        }
        let vip_ids = st.services.iter().map(|(v, s)| (s.id, *v)).collect();
        let index = st
            .backends
            .iter()
            .map(|s| (s.index, s.id.address))
            .collect();
        Ok(Counters {
            global,
            vips,
            backends,
            vip_ids,
            index,
        })
    }

    fn percpu_sum(
        &self,
        map: &std::os::fd::OwnedFd,
        key: u32,
        words: usize,
    ) -> io::Result<Vec<u64>> {
        let stride = words * 8;
        let mut buf = vec![0u8; stride * self.maps.cpus];
        let mut sum = vec![0u64; words];
        if sys::lookup(map.as_fd(), &key.to_ne_bytes(), &mut buf)? {
            for cpu in buf.chunks_exact(stride) {
                for (w, s) in cpu.chunks_exact(8).zip(sum.iter_mut()) {
                    *s += u64::from_ne_bytes(w.try_into().expect("8 bytes"));
                }
            }
        }
        Ok(sum)
    }

    /// Connection-table entries used within `idle_ns`, per VIP id and per
    /// backend index. Reads the whole table through mmap (2 MiB at the
    /// default size): call it from a sampler, not per request.
    pub fn active_flows(&self, idle_ns: u64) -> io::Result<(HashMap<u32, u64>, HashMap<u32, u64>)> {
        let now = monotonic_ns();
        let (mut per_vip, mut per_backend) = (HashMap::new(), HashMap::new());
        let table = self.flow_table(false)?;
        for w in table.words() {
            let Some(slot) = abi::FlowSlot::parse(w.load(Ordering::Relaxed)) else {
                continue;
            };
            if abi::flow_age_ns(slot.stamp, now) <= idle_ns {
                *per_vip.entry(slot.vip).or_insert(0) += 1;
                *per_backend.entry(slot.backend).or_insert(0) += 1;
            }
        }
        Ok((per_vip, per_backend))
    }

    fn flow_table(&self, writable: bool) -> io::Result<sys::Mapped> {
        let len = self.maps.flow_sets as usize * abi::FLOW_WAYS * 8;
        sys::Mapped::new(self.maps.flows.as_fd(), len, writable)
    }

    /// Empties the connection-table slots `stale` picks, each by a
    /// compare-and-swap, so a slot the program rewrote meanwhile stays.
    fn sweep_flows(&self, stale: impl Fn(&abi::FlowSlot) -> bool) -> io::Result<()> {
        let table = self.flow_table(true)?;
        for w in table.words() {
            let v = w.load(Ordering::Relaxed);
            if abi::FlowSlot::parse(v).is_some_and(|s| stale(&s)) {
                let _ = w.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(())
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

/// Summed counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub global: BTreeMap<&'static str, u64>,
    /// packets, bytes, new flows
    pub vips: BTreeMap<Vip, [u64; 3]>,
    pub backends: BTreeMap<IpAddr, [u64; 3]>,
    /// VIP id → VIP, backend index → address (to name active flows).
    pub vip_ids: HashMap<u32, Vip>,
    pub index: HashMap<u32, IpAddr>,
}

/// CLOCK_MONOTONIC_COARSE in ns: the clock of `bpf_ktime_get_coarse_ns`.
pub use boltz_core::clock::coarse_ns as monotonic_ns;
