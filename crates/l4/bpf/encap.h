/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * Sending a balanced packet on: IP-in-IP encapsulation (an outer IPv4 or
 * IPv6 header in front of the packet, DSR) and the choice of next hop,
 * straight to a backend whose MAC is configured or through the kernel's
 * FIB and neighbour table otherwise.
 */
#ifndef BOLTZ_ENCAP_H
#define BOLTZ_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

#define AF_INET 2
#define AF_INET6 10

/* How long a CPU trusts a remembered next hop (struct nexthop). */
#define NEXTHOP_TTL_NS 1000000000ULL

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

/* Sends the frame straight to a backend whose MAC is configured (no FIB
 * lookup), from our own MAC. */
static __always_inline int send_to_mac(struct ethhdr *eth, const struct backend *b,
				       const struct config *cfg)
{
	__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
	return verdict(C_TX, XDP_TX);
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
	if (b->flags & BACKEND_MAC)
		return send_to_mac(eth, b, cfg);
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
	if (b->flags & BACKEND_MAC)
		return send_to_mac(eth, b, cfg);
	return send_routed(ctx, eth, 6, cfg->src6, b->addr, inner_len + sizeof(struct ipv6hdr), bidx);
}

#endif
