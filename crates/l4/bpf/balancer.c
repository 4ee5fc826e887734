// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * boltz l4 data path: two XDP programs built with clang -target bpf into
 * balancer.o (the benchmarks' helper programs are in bench.c).
 *
 *   balancer  on the load balancer: packets for a configured VIP (address,
 *             port, protocol) are sent to a backend chosen by the VIP's
 *             Maglev table (or the connection table for a known flow), as
 *             IP-in-IP (DSR: the backend answers the client directly) or by
 *             a destination-MAC rewrite (L2 mode). Everything else passes to
 *             the kernel untouched.
 *   decap     on a backend whose kernel has no ipip module: strips the outer
 *             IPv4 (proto 4) or IPv6 (next header 41) header and passes the
 *             inner packet up.
 *
 * Headers by role: abi.h the layouts shared with the control plane
 * (mirrored by crates/l4/src/abi.rs), maps.h the maps and counters, parse.h
 * reading a frame, hash.h the flow hash, flows.h the connection table,
 * encap.h encapsulation and the next hop.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"
#include "maps.h"
#include "parse.h"
#include "hash.h"
#include "flows.h"
#include "encap.h"

/* The backend the VIP's Maglev table gives a new flow of hash `hash`, its
 * index in *bidx; 0 when the VIP has no table or the slot names no backend
 * in use. */
static __always_inline struct backend *maglev_pick(__u32 vid, __u32 hash, __u32 *bidx)
{
	__u32 slot = 0, *size, *owner;
	struct backend *b;
	void *ring;

	ring = bpf_map_lookup_elem(&rings, &vid);
	if (!ring)
		return 0;
	size = bpf_map_lookup_elem(ring, &slot);
	if (!size || !*size)
		return 0;
	slot = 1 + hash % *size;
	owner = bpf_map_lookup_elem(ring, &slot);
	if (!owner)
		return 0;
	*bidx = *owner;
	b = bpf_map_lookup_elem(&backends, bidx);
	if (!b || !(b->flags & BACKEND_ACTIVE))
		return 0;
	return b;
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key fk = {};
	struct vip_key vk = {};
	struct vip_meta *meta;
	struct flow_set *set;
	__u64 *mine = 0, found = 0, ident, stamp;
	__u32 hash, fp, set_index;
	struct backend *b = 0;
	struct config *cfg;
	__u32 zero = 0, bidx = 0, new_flow = 0;
	__u16 inner_len;
	__u8 tos = 0;
	int action;

	/* The packet's flow, and the VIP it is for. */
	action = parse_flow(eth, end, &fk, &tos);
	if (action != FURTHER_PROCESSING)
		return action;
	__builtin_memcpy(vk.addr, fk.dst, 16);
	vk.port = fk.dport;
	vk.proto = fk.proto;
	vk.family = fk.family;
	meta = bpf_map_lookup_elem(&vips, &vk);
	if (!meta)
		return verdict(C_PASS_NOT_VIP, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return verdict(C_DROP_NO_BACKEND, XDP_DROP);

	/* A known flow keeps its backend: the flow's set in the connection
	 * table, and its slot if it has one (an entry naming a retired backend
	 * is reused for the new choice). */
	flow_hashes(&fk, meta->tag, &hash, &fp);
	set_index = hash & cfg->flow_mask;
	set = bpf_map_lookup_elem(&flows, &set_index);
	stamp = (bpf_ktime_get_coarse_ns() >> STAMP_NS_SHIFT) & STAMP_MASK;
	ident = ((__u64)((fp >> 5) | 1) << FP_SHIFT) | ((__u64)meta->id << VIP_SHIFT);
	if (set)
		mine = flow_find(set, ident, &found);
	if (mine) {
		bidx = found & BACKEND_MASK;
		b = bpf_map_lookup_elem(&backends, &bidx);
		if (b && (b->flags & BACKEND_ACTIVE)) {
			count(C_LRU_HIT);
			flow_touch(mine, found, stamp);
		} else {
			b = 0;
		}
	}

	/* A new flow goes where the Maglev table says, and is remembered
	 * when there is a table and the flood guard allows. */
	if (!b) {
		count(C_LRU_MISS);
		b = maglev_pick(meta->id, hash, &bidx);
		if (!b)
			return verdict(C_DROP_NO_BACKEND, XDP_DROP);
		new_flow = 1;
		if (!set) {
			/* no table (flow_mask beyond it): balance by Maglev alone */
		} else if (may_insert(cfg)) {
			flow_insert(set, mine, ident | (stamp << STAMP_SHIFT) | (bidx & BACKEND_MASK), stamp);
		} else {
			count(C_FLOOD_SKIP);
		}
	}

	/* Counted, then sent on. */
	inner_len = (__u16)(end - (void *)(eth + 1));
	add(&vip_stats, meta->id, inner_len, new_flow);
	add(&backend_stats, bidx, inner_len, new_flow);

	if (meta->flags & VIP_L2) {
		if (!(b->flags & BACKEND_MAC))
			return verdict(C_DROP_NO_MAC, XDP_DROP);
		return send_to_mac(eth, b, cfg);
	}
	if (b->family != fk.family)
		return verdict(C_DROP_FAMILY, XDP_DROP);
	if (fk.family == 4)
		return encap4(ctx, b, bidx, cfg, tos, inner_len);
	return encap6(ctx, b, bidx, cfg, inner_len);
}

/* Moves the Ethernet header forward over an outer IP header of `outer`
 * bytes (the ranges do not overlap: outer > 14) and drops the outer header. */
static __always_inline int strip(struct xdp_md *ctx, const int outer)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + outer + sizeof(struct ethhdr) > end)
		return verdict(C_DECAP_PASS, XDP_PASS);
	__builtin_memcpy(data + outer, data, sizeof(struct ethhdr));
	if (bpf_xdp_adjust_head(ctx, outer))
		return verdict(C_DROP_ENCAP, XDP_DROP);
	return XDP_PASS;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return verdict(C_DECAP_PASS, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_IPIP ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return verdict(C_DECAP_PASS, XDP_PASS);
		count(C_DECAP_V4);
		return strip(ctx, sizeof(struct iphdr));
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_IPV6)
			return verdict(C_DECAP_PASS, XDP_PASS);
		count(C_DECAP_V6);
		return strip(ctx, sizeof(struct ipv6hdr));
	}
	return verdict(C_DECAP_PASS, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
