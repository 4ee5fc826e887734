#!/usr/bin/env python3
"""report.py RESULTS_TSV RATE

Summarises the raw measurements of dns.sh. Input lines (tab separated):
  tput MIX SERVER ROUND QPS CPU_SHARE OTHER_SHARE LOST
  lat  MIX SERVER 0     QPS CPU_SHARE OTHER_SHARE LOST P50_US P99_US
CPU_SHARE is the server's CPU seconds per wall second (1.0 = one core busy).
Prints per mix: median QPS, median CPU %, median of per-round QPS per server
core (QPS / CPU_SHARE), the CPU % at the fixed latency rate, p50/p99, the
median "other" load on CPU 1 (interference), and the
ratios boltz/gdnsd, boltz/knot, boltz/nsd of QPS/core (raw QPS in brackets),
and the cost of response rate limiting (boltz-rrl / boltz-t1), all from the
same invocation.
"""
import statistics
import sys
from collections import OrderedDict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rate = sys.argv[2]
tput, lat = OrderedDict(), {}
other = []
for r in rows:
    key = (r[1], r[2])
    qps, share, oth, lost = float(r[4]), float(r[5]), float(r[6]), int(r[7])
    if r[0] == "tput":
        other.append(oth)
        tput.setdefault(key, []).append((qps, share, lost, oth))
    else:
        lat[key] = (qps, share, lost, r[8], r[9])

med = statistics.median
summary = OrderedDict()
for (mix, srv), runs in tput.items():
    summary.setdefault(mix, OrderedDict())[srv] = (
        med(r[0] for r in runs),
        med(r[1] for r in runs),
        med(r[0] / r[1] if r[1] > 0 else float("nan") for r in runs),
        sum(r[2] for r in runs),
        med(r[3] for r in runs),
    )

hdr = f"{'mix':<7}| {'server':<9}| {'qps':>8} | {'cpu%':>5} | {'qps/core':>8} | {'cpu%@' + rate:>10} | {'p50 us':>6} | {'p99 us':>6} | {'other%':>6} | lost"
print(hdr)
print("-" * len(hdr))
for mix, servers in summary.items():
    for srv, (q, s, qc, lost, oth) in servers.items():
        l = lat.get((mix, srv))
        lcpu = f"{100 * l[1]:.1f}" if l else "-"
        p50, p99 = (l[3], l[4]) if l else ("-", "-")
        lost_all = lost + (l[2] if l else 0)
        print(f"{mix:<7}| {srv:<9}| {q:>8.0f} | {100 * s:>5.1f} | {qc:>8.0f} | {lcpu:>10} | {p50:>6} | {p99:>6} | {100 * oth:>6.1f} | {lost_all}")
    print("-" * len(hdr))
print()
print("ratios, QPS per server core (raw QPS in brackets; >1 = boltz better):")
for mix, servers in summary.items():
    parts = []
    for b in ("boltz-t1", "boltz-t2"):
        if b not in servers:
            continue
        for o in ("gdnsd", "knot", "nsd"):
            if o in servers:
                rc = servers[b][2] / servers[o][2]
                rq = servers[b][0] / servers[o][0]
                parts.append(f"{b}/{o} {rc:.2f} ({rq:.2f})")
    print(f"  {mix:<7} " + "   ".join(parts))
print()
if any("boltz-rrl" in servers for servers in summary.values()):
    print("response rate limiting on but limiting nothing, QPS per server core boltz-rrl / boltz-t1 (1 = free):")
    for mix, servers in summary.items():
        if "boltz-rrl" in servers and "boltz-t1" in servers:
            rc = servers["boltz-rrl"][2] / servers["boltz-t1"][2]
            rq = servers["boltz-rrl"][0] / servers["boltz-t1"][0]
            print(f"  {mix:<7} {rc:.3f} ({rq:.3f} raw), a cost of {100 * (1 - rc):+.1f}% per core")
    print()
print(f"latency: p50/p99 from one run per server at -Q {rate} (dnsperf -v per-query latencies);")
print("other% = median busy time of CPU 1 (the servers' core) not used by the measured server during its")
print("throughput runs: load from other processes on the shared machine, e.g. concurrent cargo builds;")
print(f"max over all runs {100 * max(other or [0]):.1f}% of a core. qps/core is meant to be robust to it, raw qps is not.")
