//! What the local API reads from the control plane: each service with the
//! slots its backends hold in the live table, the services' capacities,
//! and the data path's per-CPU counters summed.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};

use serde::Serialize;

use super::Control;
use crate::abi;
use crate::service::{ServiceSpec, Vip};
use crate::sys;

/// One VIP as reported by `GET /v1/services`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub vip: Vip,
    #[serde(flatten)]
    pub spec: ServiceSpec,
    /// Slots each backend owns in the live table (same order as `backends`).
    pub slots: Vec<u32>,
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

impl Control {
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

    /// The `words` 64-bit counters at `key` of a per-CPU map, summed over
    /// the CPUs.
    fn percpu_sum(&self, map: &OwnedFd, key: u32, words: usize) -> io::Result<Vec<u64>> {
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
}
