/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * The connection table (the `flows` map; its slot layout is in abi.h):
 * finding a flow's slot in its set, refreshing it, and inserting a new flow
 * under the flood guard.
 */
#ifndef BOLTZ_FLOWS_H
#define BOLTZ_FLOWS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* The slot of the flow `ident` (fingerprint and VIP id) in `set`, with the
 * slot's value in *found; 0 when the set does not hold the flow. */
static __always_inline __u64 *flow_find(struct flow_set *set, __u64 ident, __u64 *found)
{
#pragma unroll
	for (int i = 0; i < FLOW_WAYS; i++) {
		__u64 v = *(volatile __u64 *)&set->slot[i];
		if ((v & IDENT_MASK) == ident) {
			*found = v;
			return &set->slot[i];
		}
	}
	return 0;
}

/* Marks a found slot as used at `stamp`. At most once a stamp (~1 s): a
 * write per packet would dirty the set's cache line for nothing. */
static __always_inline void flow_touch(__u64 *slot, __u64 found, __u64 stamp)
{
	if (((found >> STAMP_SHIFT) & STAMP_MASK) != stamp)
		__sync_val_compare_and_swap(slot, found,
					    (found & ~(STAMP_MASK << STAMP_SHIFT)) | (stamp << STAMP_SHIFT));
}

/* Room for the connection table: false once this CPU has inserted its quota
 * of new flows in the current second (Katran's flood guard), so a SYN flood
 * cannot evict established flows. */
static __always_inline int may_insert(const struct config *cfg)
{
	__u32 zero = 0;
	struct flood *f;
	__u64 now;

	if (!cfg->flood_limit)
		return 1;
	f = bpf_map_lookup_elem(&flood, &zero);
	if (!f)
		return 1;
	now = bpf_ktime_get_coarse_ns();
	if (now - f->window > 1000000000ULL) {
		f->window = now;
		f->count = 0;
	}
	if (f->count >= cfg->flood_limit)
		return 0;
	f->count += 1;
	return 1;
}

/* Writes `entry` into `set`: into `victim` (the flow's own stale slot) when
 * given, else an empty slot, else the least recently used one at `stamp`.
 * A lost race (another CPU wrote the slot first) leaves this flow to insert
 * on its next packet, to the same backend. */
static __always_inline void flow_insert(struct flow_set *set, __u64 *victim, __u64 entry, __u64 stamp)
{
	__u64 old;

	if (!victim) {
		__u64 oldest = 0;
		victim = &set->slot[0];
#pragma unroll
		for (int i = 0; i < FLOW_WAYS; i++) {
			__u64 v = *(volatile __u64 *)&set->slot[i];
			__u64 age = (stamp - (v >> STAMP_SHIFT)) & STAMP_MASK;
			if (!v) {
				victim = &set->slot[i];
				break;
			}
			if (age > oldest) {
				oldest = age;
				victim = &set->slot[i];
			}
		}
	}
	old = *(volatile __u64 *)victim;
	__sync_val_compare_and_swap(victim, old, entry);
}

#endif
