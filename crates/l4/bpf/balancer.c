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
 * The struct layouts below are mirrored by crates/l4/src/abi.rs; keep them in step.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VIPS 512
#define MAX_BACKENDS 4096

#define AF_INET 2
#define AF_INET6 10

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
 * tag never matches its predecessor's flows. Mirrored by crates/l4/src/abi.rs. */
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

struct flood {
	__u64 window; /* start of the current one-second window, ns */
	__u64 count;
};

/* A VIP's Maglev table: entry 0 holds the table size M (prime), entries
 * 1..=M the backend index of each slot. Size and slots travel together, so
 * swapping the outer entry changes both at once. */
/* A backend's next hop as bpf_fib_lookup last gave it on this CPU; the
 * control plane zeroes an entry when its backend index is retired. */
#define NEXTHOP_TTL_NS 1000000000ULL
struct nexthop {
	__u64 stamp; /* bpf_ktime_get_coarse_ns of the lookup; 0 = empty */
	__u32 ifindex;
	__u32 ingress;
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[4];
};

struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 65538);
	/* each table is sized for its M; filled through mmap */
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_VIPS);
	__uint(key_size, 4);
	__array(values, struct ring);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	/* 32768 sets of 8 slots; boltz l4 --conn-table sizes it */
	__uint(max_entries, 32768);
	/* page-aligned values, so each set is one cache line; the control
	 * plane reads and sweeps the table through mmap */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct flow_set);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct nexthop);
} nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flood);
} flood SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct counters);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct counters);
} backend_stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &what);
	if (c)
		*c += 1;
}

static __always_inline int verdict(__u32 what, int action)
{
	count(what);
	return action;
}

static __always_inline void add(void *map, __u32 index, __u64 bytes, __u64 new_flow)
{
	struct counters *c = bpf_map_lookup_elem(map, &index);
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
		c->new_flows += new_flow;
	}
}

/* MurmurHash3 (x86_32) over the 32-bit words of a flow key (4 for IPv4, 10
 * for IPv6); mirrored by abi::flow_hash in Rust so tests can predict the
 * backend of a flow. */
static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

#define FLOW_SEED 0x626f6c74 /* "bolt" */
static __always_inline __u32 murmur_words(const __u32 *w, const int n, __u32 seed)
{
	__u32 h = seed;
#pragma unroll
	for (int i = 0; i < n; i++) {
		__u32 x = w[i] * 0xcc9e2d51;
		x = rotl32(x, 15) * 0x1b873593;
		h = rotl32(h ^ x, 13) * 5 + 0xe6546b64;
	}
	h ^= n * 4;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline void ipv4_csum(struct iphdr *ip)
{
	__u16 *p = (__u16 *)ip;
	__u32 sum = 0;
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += p[i];
	ip->check = csum_fold(sum);
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

/* Chooses the next hop for an encapsulated packet through the kernel's FIB
 * and neighbour table (remembered per CPU and backend for up to a second),
 * sets both MACs and returns the XDP action. */
static __always_inline int send_routed(struct xdp_md *ctx, struct ethhdr *eth, int family,
				       const __u8 *src, const __u8 *dst, __u16 len, __u32 bidx)
{
	struct bpf_fib_lookup p = {};
	struct nexthop *nh = bpf_map_lookup_elem(&nexthops, &bidx);
	__u64 now = bpf_ktime_get_coarse_ns();
	long rc;

	if (nh && nh->stamp && now - nh->stamp < NEXTHOP_TTL_NS && nh->ingress == ctx->ingress_ifindex) {
		__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
		if (nh->ifindex == ctx->ingress_ifindex)
			return verdict(C_TX, XDP_TX);
		count(C_REDIRECT);
		return bpf_redirect(nh->ifindex, 0);
	}

	p.ifindex = ctx->ingress_ifindex;
	p.tot_len = len;
	if (family == 4) {
		p.family = AF_INET;
		p.l4_protocol = IPPROTO_IPIP;
		__builtin_memcpy(&p.ipv4_src, src, 4);
		__builtin_memcpy(&p.ipv4_dst, dst, 4);
	} else {
		p.family = AF_INET6;
		p.l4_protocol = IPPROTO_IPV6;
		__builtin_memcpy(p.ipv6_src, src, 16);
		__builtin_memcpy(p.ipv6_dst, dst, 16);
	}
	/* Answers only when forwarding is on for the ingress interface
	 * (boltz l4 enables it at start). */
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		/* The control plane keeps backends' neighbour entries warm; the
		 * kernel could not forward this one either (our own source). */
		return verdict(C_DROP_NO_NEIGH, XDP_DROP);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return verdict(C_DROP_NO_ROUTE, XDP_DROP);
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	if (nh) {
		nh->stamp = now;
		nh->ifindex = p.ifindex;
		nh->ingress = ctx->ingress_ifindex;
		__builtin_memcpy(nh->dmac, p.dmac, ETH_ALEN);
		__builtin_memcpy(nh->smac, p.smac, ETH_ALEN);
	}
	if (p.ifindex == ctx->ingress_ifindex)
		return verdict(C_TX, XDP_TX);
	count(C_REDIRECT);
	return bpf_redirect(p.ifindex, 0);
}

static __always_inline int encap4(struct xdp_md *ctx, const struct backend *b, __u32 bidx,
				  const struct config *cfg, __u8 tos, __u16 inner_len)
{
	void *data, *end;
	struct ethhdr *eth, *old;
	struct iphdr *ip;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return verdict(C_DROP_ENCAP, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	old = data + sizeof(struct iphdr);
	ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > end || (void *)(old + 1) > end)
		return verdict(C_DROP_ENCAP, XDP_DROP);
	__builtin_memcpy(eth, old, sizeof(struct ethhdr));
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = tos;
	ip->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_IPIP;
	__builtin_memcpy(&ip->saddr, cfg->src4, 4);
	__builtin_memcpy(&ip->daddr, b->addr, 4);
	ipv4_csum(ip);
	if (b->flags & BACKEND_MAC) {
		__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
		return verdict(C_TX, XDP_TX);
	}
	return send_routed(ctx, eth, 4, cfg->src4, b->addr, inner_len + sizeof(struct iphdr), bidx);
}

static __always_inline int encap6(struct xdp_md *ctx, const struct backend *b, __u32 bidx,
				  const struct config *cfg, __u16 inner_len)
{
	void *data, *end;
	struct ethhdr *eth, *old;
	struct ipv6hdr *ip6, *inner;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct ipv6hdr)))
		return verdict(C_DROP_ENCAP, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	old = data + sizeof(struct ipv6hdr);
	ip6 = data + sizeof(struct ethhdr);
	inner = (void *)(ip6 + 1);
	if ((void *)(inner + 1) > end || (void *)(old + 1) > end)
		return verdict(C_DROP_ENCAP, XDP_DROP);
	__builtin_memcpy(eth, old, sizeof(struct ethhdr));
	/* version, traffic class and flow label of the inner packet */
	__builtin_memcpy(ip6, inner, 4);
	ip6->payload_len = bpf_htons(inner_len);
	ip6->nexthdr = IPPROTO_IPV6;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, cfg->src6, 16);
	__builtin_memcpy(&ip6->daddr, b->addr, 16);
	if (b->flags & BACKEND_MAC) {
		__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
		return verdict(C_TX, XDP_TX);
	}
	return send_routed(ctx, eth, 6, cfg->src6, b->addr, inner_len + sizeof(struct ipv6hdr), bidx);
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key fk = {};
	struct flow_key4 fk4 = {};
	struct vip_key vk = {};
	struct vip_meta *meta;
	struct flow_set *set;
	__u64 *mine = 0, found = 0, ident, stamp;
	__u32 hash, fp, set_index;
	struct backend *b = 0;
	struct config *cfg;
	__u32 zero = 0, bidx = 0, new_flow = 0;
	__u16 *ports, inner_len;
	__u8 tos = 0;

	if ((void *)(eth + 1) > end)
		return verdict(C_PASS_SHORT, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return verdict(C_PASS_SHORT, XDP_PASS);
		if (ip->ihl != 5)
			return verdict(C_PASS_IP_OPTIONS, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3fff))
			return verdict(C_PASS_FRAGMENT, XDP_PASS);
		if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
			return verdict(C_PASS_NOT_VIP, XDP_PASS);
		fk.family = 4;
		fk.proto = ip->protocol;
		__builtin_memcpy(fk.src, &ip->saddr, 4);
		__builtin_memcpy(fk.dst, &ip->daddr, 4);
		tos = ip->tos;
		ports = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return verdict(C_PASS_SHORT, XDP_PASS);
		if (ip6->nexthdr == 44)
			return verdict(C_PASS_FRAGMENT, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
			return verdict(C_PASS_IPV6_EXT, XDP_PASS);
		fk.family = 6;
		fk.proto = ip6->nexthdr;
		__builtin_memcpy(fk.src, &ip6->saddr, 16);
		__builtin_memcpy(fk.dst, &ip6->daddr, 16);
		ports = (void *)(ip6 + 1);
	} else {
		return verdict(C_PASS_NOT_IP, XDP_PASS);
	}
	if ((void *)(ports + 2) > end)
		return verdict(C_PASS_SHORT, XDP_PASS);
	fk.sport = ports[0];
	fk.dport = ports[1];

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

	if (fk.family == 4) {
		__builtin_memcpy(fk4.src, fk.src, 4);
		__builtin_memcpy(fk4.dst, fk.dst, 4);
		fk4.sport = fk.sport;
		fk4.dport = fk.dport;
		fk4.proto = fk.proto;
		hash = murmur_words((const __u32 *)&fk4, 4, FLOW_SEED);
		fp = murmur_words((const __u32 *)&fk4, 4, meta->tag);
	} else {
		hash = murmur_words((const __u32 *)&fk, 10, FLOW_SEED);
		fp = murmur_words((const __u32 *)&fk, 10, meta->tag);
	}

	/* The flow's set in the connection table, and its slot if it has one
	 * (an entry naming a retired backend is reused for the new choice). */
	set_index = hash & cfg->flow_mask;
	set = bpf_map_lookup_elem(&flows, &set_index);
	stamp = (bpf_ktime_get_coarse_ns() >> STAMP_NS_SHIFT) & STAMP_MASK;
	ident = ((__u64)((fp >> 5) | 1) << FP_SHIFT) | ((__u64)meta->id << VIP_SHIFT);
	if (set) {
#pragma unroll
		for (int i = 0; i < FLOW_WAYS; i++) {
			__u64 v = *(volatile __u64 *)&set->slot[i];
			if ((v & IDENT_MASK) == ident) {
				mine = &set->slot[i];
				found = v;
				break;
			}
		}
	}
	if (mine) {
		bidx = found & BACKEND_MASK;
		b = bpf_map_lookup_elem(&backends, &bidx);
		if (b && (b->flags & BACKEND_ACTIVE)) {
			count(C_LRU_HIT);
			/* Refreshed at most once a stamp (~1 s): a write per packet
			 * would dirty the set's cache line for nothing. */
			if (((found >> STAMP_SHIFT) & STAMP_MASK) != stamp)
				__sync_val_compare_and_swap(mine, found,
							    (found & ~(STAMP_MASK << STAMP_SHIFT)) |
								    (stamp << STAMP_SHIFT));
		} else {
			b = 0;
		}
	}
	if (!b) {
		__u32 vid = meta->id, slot = 0;
		__u32 *size, *owner;
		void *ring;

		count(C_LRU_MISS);
		ring = bpf_map_lookup_elem(&rings, &vid);
		if (!ring)
			return verdict(C_DROP_NO_BACKEND, XDP_DROP);
		size = bpf_map_lookup_elem(ring, &slot);
		if (!size || !*size)
			return verdict(C_DROP_NO_BACKEND, XDP_DROP);
		slot = 1 + hash % *size;
		owner = bpf_map_lookup_elem(ring, &slot);
		if (!owner)
			return verdict(C_DROP_NO_BACKEND, XDP_DROP);
		bidx = *owner;
		b = bpf_map_lookup_elem(&backends, &bidx);
		if (!b || !(b->flags & BACKEND_ACTIVE))
			return verdict(C_DROP_NO_BACKEND, XDP_DROP);
		new_flow = 1;
		if (!set) {
			/* no table (flow_mask beyond it): balance by Maglev alone */
		} else if (may_insert(cfg)) {
			/* Into its own stale slot, else an empty one, else the least
			 * recently used of the set. A lost race (another CPU wrote
			 * the slot first) leaves this flow to insert on its next
			 * packet, to the same backend. */
			__u64 *victim = mine, old;
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
			__sync_val_compare_and_swap(victim, old,
						    ident | (stamp << STAMP_SHIFT) | (bidx & BACKEND_MASK));
		} else {
			count(C_FLOOD_SKIP);
		}
	}

	inner_len = (__u16)(end - (void *)(eth + 1));
	add(&vip_stats, meta->id, inner_len, new_flow);
	add(&backend_stats, bidx, inner_len, new_flow);

	if (meta->flags & VIP_L2) {
		if (!(b->flags & BACKEND_MAC))
			return verdict(C_DROP_NO_MAC, XDP_DROP);
		__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
		return verdict(C_TX, XDP_TX);
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
