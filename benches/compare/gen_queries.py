#!/usr/bin/env python3
"""gen_queries.py NETWORKS_CSV OUTDIR [N]

Writes three dnsperf input files in its `-B` binary format (each DNS message
prefixed by its 2-byte big-endian length, RFC 1035 4.2.2 TCP framing; dnsperf
overwrites the message ID and sends the rest as is), N queries each (default
200000), deterministic:

  OUTDIR/ecs.bin     80% A/AAAA on the steered names www/cdn, each with an EDNS
                     Client Subnet option (RFC 7871) whose subnet is drawn from
                     the CSV networks: IPv4 source /24, IPv6 source /48 or /56,
                     address bits beyond the prefix zero, only ceil(prefix/8)
                     address octets, scope 0. 20% static: static names (A,
                     AAAA, MX, TXT, SOA), NS at the apex, NXDOMAIN names.
  OUTDIR/noecs.bin   the same mix with plain EDNS (OPT, 1232 bytes, no option):
                     every server answers its fallback for 127.0.0.1.
  OUTDIR/static.bin  static names, apex NS and NXDOMAIN only (plain EDNS): the
                     mix every server, nsd included, answers from static data.
"""
import ipaddress
import random
import struct
import sys

ORIGIN = "example.com."
STEERED = ["www", "cdn"]
STATIC = [("ns1", 1), ("ns2", 1), ("mail", 1), ("mail", 28), ("v6", 28), ("txt", 16),
          ("static", 1), ("static", 28), ("@", 15), ("@", 16), ("@", 6)]
A, AAAA, NS = 1, 28, 2


def qname(label):
    name = ORIGIN if label == "@" else f"{label}.{ORIGIN}"
    out = b""
    for part in name.rstrip(".").split("."):
        out += bytes([len(part)]) + part.encode()
    return out + b"\0"


def opt(ecs=None):
    """OPT RR (payload 1232, version 0, no DO); ecs = (family, prefix, addr bytes)."""
    rdata = b""
    if ecs:
        fam, prefix, addr = ecs
        body = struct.pack("!HBB", fam, prefix, 0) + addr
        rdata = struct.pack("!HH", 8, len(body)) + body
    return b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(rdata)) + rdata


def message(label, qtype, ecs=None):
    hdr = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1)  # id (rewritten), flags 0 (no RD), 1 q, 1 additional
    return hdr + qname(label) + struct.pack("!HH", qtype, 1) + opt(ecs)


def ecs_from(net, rng):
    """A client subnet inside net: v4 /24, v6 /48 or /56, host bits zero."""
    if net.version == 4:
        prefix = 24
    else:
        prefix = rng.choice([48, 56])
    if net.prefixlen < prefix:                     # pick a random sub-block of the network
        span = 1 << (prefix - net.prefixlen)
        sub = int(net.network_address) + (rng.randrange(span) << (net.max_prefixlen - prefix))
    else:                                          # network smaller than the source prefix
        sub = int(net.network_address)
        prefix = net.prefixlen if net.prefixlen % 8 == 0 else prefix
    full = sub.to_bytes(net.max_prefixlen // 8, "big")
    return (1 if net.version == 4 else 2, prefix, full[: (prefix + 7) // 8])


def static_query(rng):
    r = rng.random()
    if r < 0.60:
        label, qtype = rng.choice(STATIC)
        return message(label, qtype)
    if r < 0.75:
        return message("@", NS)
    return message(f"nx{rng.randrange(1 << 30):08x}", rng.choice([A, AAAA]))


def main():
    csv, outdir = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
    nets = []
    for line in open(csv):
        line = line.strip()
        if line and not line.startswith(("#", "network")):
            nets.append(ipaddress.ip_network(line.split(",")[0]))
    frame = lambda m: struct.pack("!H", len(m)) + m
    for name, use_ecs, steered_share in (("ecs", True, 0.8), ("noecs", False, 0.8), ("static", False, 0.0)):
        rng = random.Random(7)                     # same draw sequence for ecs and noecs
        out = bytearray()
        for _ in range(n):
            if rng.random() < steered_share:
                label = rng.choice(STEERED)
                qtype = A if rng.random() < 0.75 else AAAA
                ecs = ecs_from(rng.choice(nets), rng)
                out += frame(message(label, qtype, ecs if use_ecs else None))
            else:
                out += frame(static_query(rng))
        with open(f"{outdir}/{name}.bin", "wb") as f:
            f.write(out)
    print(f"{n} queries per mix from {len(nets)} networks")


if __name__ == "__main__":
    main()
