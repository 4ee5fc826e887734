#!/usr/bin/env python3
"""scaling.py SCALING_TSV

Summarises dns.sh's thread-scaling phase. Input lines (tab separated):
  SERVER ROUND QPS CPU_SHARE "TICKS_WORKER0 TICKS_WORKER1 ..."
Prints per server the median QPS, CPU %, QPS per server core, and each UDP
worker's share of the workers' CPU, then QPS per core of t2 relative to t1
(about 1.0 or more means the second thread adds capacity without contention).
"""
import statistics
import sys
from collections import OrderedDict

runs = OrderedDict()
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    srv, _rnd, qps, share, ticks = line.rstrip("\n").split("\t")
    runs.setdefault(srv, []).append((float(qps), float(share), [int(t) for t in ticks.split()]))

med = statistics.median
per_core = {}
print(f"  {'server':<9} {'QPS':>9} {'CPU%':>6} {'QPS/core':>9}  worker CPU split")
for srv, rs in runs.items():
    per_core[srv] = med(q / s for q, s, _ in rs if s > 0)
    totals = [sum(col) for col in zip(*(t for _, _, t in rs))]
    whole = sum(totals) or 1
    split = " / ".join(f"{100 * t / whole:.0f}%" for t in totals)
    print(f"  {srv:<9} {med(q for q, _, _ in rs):>9.0f} {100 * med(s for _, s, _ in rs):>6.1f}"
          f" {per_core[srv]:>9.0f}  {split}")
if "boltz-t1" in per_core and "boltz-t2" in per_core:
    print(f"  QPS per server core, t2 / t1: {per_core['boltz-t2'] / per_core['boltz-t1']:.2f}")
