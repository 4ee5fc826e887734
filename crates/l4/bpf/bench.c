// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * Benchmark helpers, not used by boltz itself: XDP programs for
 * benches/compare/l4.sh and the examples it runs (examples/l4_trafficgen.rs,
 * examples/l4_xdp_pass.rs). Built into their own object, bench.o, so the
 * balancer's object carries only what boltz l4 attaches.
 *
 *   trafficgen  the packet generator (BPF_PROG_TEST_RUN, live frames)
 *   xdp_pass    passes everything: for the receiving peer of a veth
 *   xdp_sink    drops IP, passes ARP: a backend stand-in
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Run through BPF_PROG_TEST_RUN in live-frames mode, trafficgen writes the
 * 64-byte template frame from gen_tmpl into each frame (the pages are
 * recycled, and downstream XDP programs rewrite them in place), gives it a
 * new UDP source port, so every packet is a new flow, and transmits it.
 * dataplane::load_trafficgen fills the template. */
struct gen_frame {
	__u8 bytes[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_frame);
} gen_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_seq SEC(".maps");

SEC("xdp")
int trafficgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct gen_frame *tmpl;
	__u32 zero = 0;
	__u16 *udp;
	__u64 *seq;

	if (data + sizeof(struct gen_frame) > end)
		return XDP_ABORTED;
	tmpl = bpf_map_lookup_elem(&gen_tmpl, &zero);
	seq = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!tmpl || !seq)
		return XDP_ABORTED;
	__builtin_memcpy(data, tmpl->bytes, sizeof(struct gen_frame));
	udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	udp[0] = bpf_htons(1024 + (*seq % 60000));
	*seq += 1;
	return XDP_TX;
}

/* Passes everything. Native XDP_TX into a veth only reaches the peer when
 * the peer runs an XDP program too: benchmarks put this one there. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Drops IP packets, passes the rest (ARP): a backend stand-in for
 * benchmarks that only count what reaches the backends' interfaces. */
SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP) || eth->h_proto == bpf_htons(ETH_P_IPV6))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
