#!/usr/bin/env python3
"""cpustat.py PID

Prints one line "MONO SERVER_CPU CPU1_BUSY": CLOCK_MONOTONIC seconds, the CPU
seconds (utime+stime, all threads) of PID and all its descendants (nsd forks
xfrd/main/server processes), and the busy seconds of CPU 1 from /proc/stat
(everything but idle and iowait). dns.sh takes two snapshots around a dnsperf
run: server CPU share = dSERVER / dMONO; other load on CPU 1 (the server's
core) = (dCPU1_BUSY - dSERVER) / dMONO, which shows interference from anything
else running on the machine.
"""
import os
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()      # fields after "pid (comm) "
    return int(rest[1]), int(rest[11]) + int(rest[12])   # ppid, utime+stime


def tree_ticks(root):
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = stat(d)
            except (OSError, ValueError, IndexError):
                pass
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        if p in procs:
            total += procs[p][1]
        todo += children.get(p, [])
    return total


def cpu1_busy():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu1 "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v[:8]) - v[3] - v[4]      # minus idle, iowait
    return 0


mono = time.monotonic()
print(f"{mono:.6f} {tree_ticks(int(sys.argv[1])) / TCK:.2f} {cpu1_busy() / TCK:.2f}")
