/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * Reading a received frame: the flow it belongs to (addresses, ports,
 * protocol, family), or the reason it is passed to the kernel untouched.
 */
#ifndef BOLTZ_PARSE_H
#define BOLTZ_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

/* What a phase returns when the packet goes on to the next one; anything
 * else is the packet's XDP action. */
#define FURTHER_PROCESSING -1

/* Fills *fk with the flow of the frame at `eth` and *tos with its IPv4 TOS.
 * Passes (and counts) what cannot be balanced: short frames, non-IP, IPv4
 * with options or fragmented, IPv6 fragments and extension headers, and
 * protocols other than TCP and UDP. */
static __always_inline int parse_flow(struct ethhdr *eth, void *end, struct flow_key *fk, __u8 *tos)
{
	__u16 *ports;

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
		fk->family = 4;
		fk->proto = ip->protocol;
		__builtin_memcpy(fk->src, &ip->saddr, 4);
		__builtin_memcpy(fk->dst, &ip->daddr, 4);
		*tos = ip->tos;
		ports = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return verdict(C_PASS_SHORT, XDP_PASS);
		if (ip6->nexthdr == 44)
			return verdict(C_PASS_FRAGMENT, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
			return verdict(C_PASS_IPV6_EXT, XDP_PASS);
		fk->family = 6;
		fk->proto = ip6->nexthdr;
		__builtin_memcpy(fk->src, &ip6->saddr, 16);
		__builtin_memcpy(fk->dst, &ip6->daddr, 16);
		ports = (void *)(ip6 + 1);
	} else {
		return verdict(C_PASS_NOT_IP, XDP_PASS);
	}
	if ((void *)(ports + 2) > end)
		return verdict(C_PASS_SHORT, XDP_PASS);
	fk->sport = ports[0];
	fk->dport = ports[1];
	return FURTHER_PROCESSING;
}

#endif
