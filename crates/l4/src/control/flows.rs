//! The connection table as the control plane sees it: mapped shared
//! (`BPF_F_MMAPABLE`), read to count active flows and swept of the
//! entries of retired backends and removed VIPs, each slot by one atomic
//! access so the program is never stopped or shown half an entry.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use super::Control;
use crate::abi;
use crate::sys;

/// CLOCK_MONOTONIC_COARSE in ns: the clock of `bpf_ktime_get_coarse_ns`.
use boltz_core::clock::coarse_ns as monotonic_ns;

impl Control {
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
    pub(super) fn sweep_flows(&self, stale: impl Fn(&abi::FlowSlot) -> bool) -> io::Result<()> {
        let table = self.flow_table(true)?;
        for w in table.words() {
            let v = w.load(Ordering::Relaxed);
            if abi::FlowSlot::parse(v).is_some_and(|s| stale(&s)) {
                let _ = w.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
