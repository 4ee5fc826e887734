#!/usr/bin/env bash
# Memory of `boltz serve` with a City-sized geo database, before and after a
# flood of distinct client subnets.
#
# Builds a ~60-75 MB GeoIP2-City-shaped .mmdb from 1M random networks with
# `boltz geoip build`, starts boltz on it (loopback only), reads VmRSS,
# RssAnon (heap, stacks: what boltz itself holds) and RssFile (pages of the
# mapped database the kernel has in memory) from /proc, then sends one pass of
# N distinct random ECS /24 subnets (default 1,000,000) with dnsperf and reads
# them again. The claim checked: RssAnon stays well under 100 MB, and does
# not grow with the number of distinct subnets (every per-client structure
# is fixed-size). Usage: benches/compare/memory.sh  [env: NETWORKS, QUERIES]
set -euo pipefail
cd "$(dirname "$0")/../.."
NETWORKS=${NETWORKS:-1000000}
QUERIES=${QUERIES:-1000000}

command -v dnsperf >/dev/null || { apt-get update -qq && apt-get install -y -qq dnsperf >/dev/null; }
cargo build --release -q
BOLTZ=$PWD/target/release/boltz

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 - "$work" "$NETWORKS" "$QUERIES" <<'PY'
import random, struct, sys
work, networks, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
with open(f"{work}/geo.csv", "w") as f:
    f.write("network,latitude,longitude,country,continent\n")
    seen = set()
    while len(seen) < networks:
        n = rnd.getrandbits(24)
        if n in seen or (n >> 16) in (0, 10, 127) or (n >> 16) >= 224:
            continue
        seen.add(n)
        f.write(f"{n >> 16}.{(n >> 8) & 255}.{n & 255}.0/24,{rnd.uniform(-60, 70):.4f},{rnd.uniform(-180, 180):.4f},XX,EU\n")

def name(s):
    return b"".join(bytes([len(l)]) + l.encode() for l in s.split(".") if l) + b"\0"

q = name("www.example.com.")
with open(f"{work}/queries.bin", "wb") as f:
    for i in range(queries):
        a = rnd.getrandbits(24)
        ecs = struct.pack(">HBB", 1, 24, 0) + bytes([a >> 16, (a >> 8) & 255, a & 255])
        opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 4 + len(ecs)) + struct.pack(">HH", 8, len(ecs)) + ecs
        msg = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 1) + q + struct.pack(">HH", 1, 1) + opt
        f.write(struct.pack(">H", len(msg)) + msg)
PY
"$BOLTZ" geoip build "$work/geo.csv" -o "$work/geo.mmdb"
mkdir "$work/zones"
cat > "$work/zones/example.com.toml" <<'EOF'
origin = "example.com."
soa = { mname = "ns1.example.com.", rname = "h.example.com.", serial = 1 }
ns = ["ns1.example.com."]
[datacenters.fra]
location = [50.11, 8.68]
ipv4 = ["192.0.2.10"]
[datacenters.iad]
location = [38.95, -77.45]
ipv4 = ["198.51.100.10"]
[datacenters.sin]
location = [1.35, 103.82]
ipv4 = ["203.0.113.10"]
[datacenters.gru]
location = [-23.55, -46.63]
ipv4 = ["203.0.113.20"]
[datacenters.syd]
location = [-33.87, 151.21]
ipv4 = ["203.0.113.30"]
[records]
www = { type = "steered", datacenters = ["fra", "iad", "sin", "gru", "syd"], ttl = 30 }
ns1 = { type = "A", values = ["192.0.2.53"] }
EOF

"$BOLTZ" serve --zones "$work/zones" --geoip "$work/geo.mmdb" --threads 2 \
  --listen 127.0.0.1:25353 --api 127.0.0.1:25380 >"$work/ready" 2>"$work/log" &
pid=$!
for _ in $(seq 50); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.1; done

mem() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%s %d MB  ", $1, $2/1024} END {print ""}' "/proc/$pid/status"; }
size=$(stat -c %s "$work/geo.mmdb")
echo "database: $((size / 1024 / 1024)) MB, $NETWORKS networks"
echo -n "after start:          "; mem
timeout 600 dnsperf -s 127.0.0.1 -p 25353 -B -d "$work/queries.bin" -n 1 -l 300 -c 4 -q 500 2>&1 |
  grep -E "Queries (sent|completed|lost)|Queries per second"
echo -n "after $QUERIES subnets: "; mem
