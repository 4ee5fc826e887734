/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * What the balancer program and the control plane share: limits, flag
 * bits, counter indexes and the layouts of map keys and values. Mirrored
 * byte for byte by crates/l4/src/abi.rs; keep them in step.
 */
#ifndef BOLTZ_ABI_H
#define BOLTZ_ABI_H

#include <linux/types.h>

#define MAX_VIPS 512
#define MAX_BACKENDS 4096

/* vip_meta.flags */
#define VIP_L2 1
/* backend.flags */
#define BACKEND_ACTIVE 1 /* in use: connection-table entries to it stay valid */
#define BACKEND_MAC 2    /* mac is set: send straight to it, no FIB lookup */

/* Indexes of the global per-CPU counters. */
enum {
	C_LRU_HIT,
	C_LRU_MISS,
	C_PASS_NOT_VIP,
	C_PASS_FRAGMENT,
	C_PASS_IP_OPTIONS,
	C_PASS_NOT_IP,
	C_PASS_IPV6_EXT,
	C_DROP_NO_NEIGH,
	C_PASS_SHORT,
	C_DROP_NO_BACKEND,
	C_DROP_FAMILY,
	C_DROP_ENCAP,
	C_DROP_NO_ROUTE,
	C_DROP_NO_MAC,
	C_FLOOD_SKIP,
	C_TX,
	C_REDIRECT,
	C_DECAP_V4,
	C_DECAP_V6,
	C_DECAP_PASS,
	C_COUNT,
};

struct vip_key {
	__u8 addr[16]; /* IPv4: first 4 bytes, rest zero */
	__u16 port;    /* network order */
	__u8 proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;   /* 4 or 6 */
};

struct vip_meta {
	__u32 id;  /* index into rings and vip_stats */
	__u32 tag; /* unique per VIP lifetime: connection-table entries carry it */
	__u32 flags;
	__u32 pad;
};

struct backend {
	__u8 addr[16];
	__u8 mac[6];
	__u8 family;
	__u8 flags;
};

struct flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* The hashed identity of an IPv4 flow: 16 bytes instead of 40 make both
 * hashes cheaper. */
struct flow_key4 {
	__u8 src[4];
	__u8 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* The connection table is set-associative, like a CPU cache: a flow lives
 * in the 64-byte set its hash selects, in one of FLOW_WAYS 8-byte slots, and
 * a new flow replaces the least recently used slot of its set. A lookup is
 * one cache line, so one memory miss (a kernel LRU hash costs two: bucket
 * and element) and no lock. A slot is written whole by one atomic 64-bit
 * store or compare-and-swap, so no reader ever sees half an entry:
 *
 *   bits 63..37  fingerprint: 27 bits of a second hash of the flow, seeded
 *                with the VIP's tag, low bit forced to 1 (0 = empty slot)
 *   bits 36..21  stamp: bpf_ktime_get_coarse_ns() >> 30 (~1.07 s), mod 2^16
 *   bits 20..12  VIP id
 *   bits 11..0   backend index
 *
 * A flow matches when fingerprint and VIP id both do: with the set index
 * that is 42 bits of the flow's identity, and a VIP recreated under a new
 * tag never matches its predecessor's flows. */
#define FLOW_WAYS 8
#define FP_SHIFT 37
#define STAMP_SHIFT 21
#define STAMP_MASK 0xffffULL
#define STAMP_NS_SHIFT 30
#define VIP_SHIFT 12
#define VIP_MASK 0x1ffULL
#define BACKEND_MASK 0xfffULL
#define IDENT_MASK (~((STAMP_MASK << STAMP_SHIFT) | BACKEND_MASK))
_Static_assert(MAX_VIPS - 1 <= VIP_MASK, "VIP ids fit the slot");
_Static_assert(MAX_BACKENDS - 1 <= BACKEND_MASK, "backend indexes fit the slot");

struct flow_set {
	__u64 slot[FLOW_WAYS];
};

struct config {
	__u8 src4[4];
	__u32 flow_mask; /* sets in the connection table - 1 (a power of two - 1) */
	__u8 src6[16];
	__u8 smac[6];
	__u8 pad1[2];
	__u64 flood_limit; /* new connection-table entries per second per CPU; 0 = no limit */
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* A backend's next hop as bpf_fib_lookup last gave it on this CPU; the
 * control plane zeroes an entry when its backend index is retired. */
struct nexthop {
	__u64 stamp; /* bpf_ktime_get_coarse_ns of the lookup; 0 = empty */
	__u32 ifindex;
	__u32 ingress;
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[4];
};

#endif
