#!/usr/bin/env python3
"""percentiles.py DNSPERF_VERBOSE_OUTPUT

dnsperf 2.10 has no latency histogram option; with -v it prints one line per
query, "> RCODE <query> LATENCY_SECONDS" ("> T ..." for a timeout). This reads
those lines and prints "P50_US P99_US N TIMEOUTS" (nearest-rank percentiles,
microseconds).
"""
import sys

lat, timeouts = [], 0
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if not line.startswith("> "):
            continue
        parts = line.split()
        if parts[1] == "T":
            timeouts += 1
            continue
        try:
            lat.append(float(parts[-1]))
        except ValueError:
            pass
lat.sort()


def pct(p):
    if not lat:
        return float("nan")
    k = max(0, min(len(lat) - 1, int(round(p / 100.0 * len(lat) + 0.5)) - 1))
    return lat[k] * 1e6


print(f"{pct(50):.0f} {pct(99):.0f} {len(lat)} {timeouts}")
