/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * The flow hash and the flow fingerprint: MurmurHash3 (x86_32) over the
 * 32-bit words of a flow key (4 for IPv4, 10 for IPv6). Mirrored by
 * abi::flow_hash in crates/l4/src/abi.rs, so tests can predict the backend
 * of a flow.
 */
#ifndef BOLTZ_HASH_H
#define BOLTZ_HASH_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"

#define FLOW_SEED 0x626f6c74 /* "bolt" */

/* A flow key read as 32-bit words. may_alias: the keys are written as
 * bytes and halfwords, and without it clang's type-based alias analysis
 * may load the words before those stores (it did once flow_hashes was
 * inlined from here). */
typedef __u32 __attribute__((__may_alias__)) flow_word;

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 murmur_words(const flow_word *w, const int n, __u32 seed)
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

/* The flow's hash (its Maglev slot and connection-table set) and its
 * fingerprint (seeded with the VIP's tag) in *hash and *fp. An IPv4 flow is
 * hashed as the 16-byte flow_key4. */
static __always_inline void flow_hashes(const struct flow_key *fk, __u32 tag, __u32 *hash, __u32 *fp)
{
	struct flow_key4 fk4 = {};

	if (fk->family == 4) {
		__builtin_memcpy(fk4.src, fk->src, 4);
		__builtin_memcpy(fk4.dst, fk->dst, 4);
		fk4.sport = fk->sport;
		fk4.dport = fk->dport;
		fk4.proto = fk->proto;
		*hash = murmur_words((const flow_word *)&fk4, 4, FLOW_SEED);
		*fp = murmur_words((const flow_word *)&fk4, 4, tag);
	} else {
		*hash = murmur_words((const flow_word *)fk, 10, FLOW_SEED);
		*fp = murmur_words((const flow_word *)fk, 10, tag);
	}
}

#endif
