#!/usr/bin/env bash
# The whole boltz system on loopback, no root: two datacenters (fra, iad),
# each with its DNS node (`boltz serve --datacenter`), its L7 proxy
# (`boltz l7`, on its own 127.0.0.x address) and two origins (python3's
# http.server). The DNS nodes push the proxies' pools and routes, read
# their load and backend health, and poll each other's reports.
#
#   demo/run.sh                 build boltz (release) and run everything until Ctrl-C
#   demo/run.sh stop-origin fra-1    (another terminal) stop one origin
#   demo/run.sh start-origin fra-1   start it again
#   demo/run.sh load fra [N]    N requests (default 20000) through fra's proxy, 32 at a time
#   demo/run.sh show            status of both DCs and the answers for a London client
#
# Environment: BOLTZ (the binary; default: build target/release/boltz),
# DEMO_DIR (run directory, default /tmp/boltz-demo), DEMO_PORT (first of
# the ports, default 5353: DNS fra/iad on PORT and PORT+1, APIs on
# PORT+27 and PORT+28, origins from PORT+3800, proxies on 8080).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${DEMO_DIR:-/tmp/boltz-demo}
PORT=${DEMO_PORT:-5353}
DNS_FRA=$PORT DNS_IAD=$((PORT + 1))
API_FRA=$((PORT + 27)) API_IAD=$((PORT + 28))
ORIGIN=$((PORT + 3800))
PROXY=${DEMO_PROXY_PORT:-8080}
LONDON=81.2.69.0/24 WASHINGTON=67.43.156.0/24

BIN=${BOLTZ:-$ROOT/target/release/boltz}

origin_port() { # fra-1 → ORIGIN, fra-2 → ORIGIN+1, iad-1 → ORIGIN+2, iad-2 → ORIGIN+3
    local base=0
    [[ $1 == iad-* ]] && base=2
    echo $((ORIGIN + base + ${1#*-} - 1))
}

start_origin() {
    local name=$1 port
    port=$(origin_port "$name")
    mkdir -p "$RUN/www/$name"
    echo "hello from $name" >"$RUN/www/$name/index.html"
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$RUN/www/$name" \
        >>"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

# One DC of datacenters.toml: NAME "LAT, LON" ADDRESS API-PORT.
dc_toml() {
    cat <<EOF

[datacenters.$1]
location = [$2]
capacity = 300                  # requests/s
ipv4 = ["$3"]
load = { url = "http://127.0.0.1:$4/v1/site", interval = "1s", stale_after = "10s" }

[datacenters.$1.dataplane]
interval = "2s"

[datacenters.$1.l7]
api = "unix:$RUN/l7-$1.sock"

[datacenters.$1.l7.pools.web]
health = { path = "/", interval = "1s", timeout = "1s", rise = 1, fall = 2 }
backends = [{ address = "127.0.0.1:$(origin_port "$1-1")" }, { address = "127.0.0.1:$(origin_port "$1-2")" }]

[[datacenters.$1.l7.routes]]
pool = "web"
EOF
}

write_config() {
    mkdir -p "$RUN/zones"
    for dc in fra iad; do
        local ip=127.0.0.2
        [[ $dc == iad ]] && ip=127.0.0.3
        cat >"$RUN/l7-$dc.toml" <<EOF
# boltz l7 for $dc: its listener; pools and routes come from its DNS node.
workers = 1
capacity_rps = 300
[[listeners]]
address = "$ip:$PROXY"
EOF
    done
    {
        echo "# Each datacenter once, with its inside: the L7 pool and route its DNS node"
        echo "# pushes, and the feed every DNS node reads its report from."
        dc_toml fra "50.11, 8.68" 127.0.0.2 "$API_FRA"
        dc_toml iad "38.95, -77.45" 127.0.0.3 "$API_IAD"
    } >"$RUN/zones/datacenters.toml"
    cp "$ROOT/demo/example.com.toml" "$RUN/zones/"
}

up() {
    if [[ -z ${BOLTZ:-} ]]; then
        (cd "$ROOT" && cargo build --release --bin boltz)
    fi
    if [[ -e $RUN/pids ]]; then
        echo "$RUN/pids exists: is a demo running? ($0 down stops it)" >&2
        exit 1
    fi
    mkdir -p "$RUN"
    write_config
    : >"$RUN/pids"
    trap down EXIT
    trap 'exit 0' INT TERM
    for o in fra-1 fra-2 iad-1 iad-2; do
        start_origin "$o"
    done
    for dc in fra iad; do
        "$BIN" l7 --config "$RUN/l7-$dc.toml" --api "unix:$RUN/l7-$dc.sock" \
            >/dev/null 2>"$RUN/l7-$dc.log" &
        echo $! >>"$RUN/pids"
    done
    "$BIN" serve --zones "$RUN/zones" --geoip "$ROOT/geoip/demo.mmdb" --datacenter fra \
        --listen "127.0.0.1:$DNS_FRA" --api "127.0.0.1:$API_FRA" >/dev/null 2>"$RUN/dns-fra.log" &
    echo $! >>"$RUN/pids"
    "$BIN" serve --zones "$RUN/zones" --geoip "$ROOT/geoip/demo.mmdb" --datacenter iad \
        --listen "127.0.0.1:$DNS_IAD" --api "127.0.0.1:$API_IAD" >/dev/null 2>"$RUN/dns-iad.log" &
    echo $! >>"$RUN/pids"
    for port in $API_FRA $API_IAD; do
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$port/v1/site" >/dev/null && break
            sleep 0.1
        done
    done
    cat <<EOF
boltz demo running (logs and generated config in $RUN). In another terminal:

  dig @127.0.0.1 -p $DNS_FRA www.example.com +subnet=$LONDON +short       # London → fra: 127.0.0.2
  dig @127.0.0.1 -p $DNS_IAD www.example.com +subnet=$WASHINGTON +short   # Washington → iad: 127.0.0.3
  curl http://127.0.0.2:$PROXY/                                         # through fra's L7 to an origin
  $0 show                        # each DC's health, load, price and the London answer
  $0 stop-origin fra-1           # half of fra's pool: its capacity halves
  $0 stop-origin fra-2           # none: fra leaves the answers
  $0 start-origin fra-1          # back
  $0 load fra                    # 20000 requests through fra: its utilisation and price rise

Ctrl-C stops everything.
EOF
    wait
}

down() {
    trap - EXIT
    for f in "$RUN"/pids "$RUN"/*.pid; do
        [[ -e $f ]] || continue
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$f"
        rm -f "$f"
    done
}

show() {
    for port in $API_FRA $API_IAD; do
        curl -sf "http://127.0.0.1:$port/v1/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
site = s["site"]
print("node of %s: components %s" % (site["datacenter"],
      ", ".join("%s %s" % (c["component"], c["state"]) for c in site["components"])))
for z in s["zones"]:
    for d in z["datacenters"]:
        print("  %-4s %-8s utilisation %5.2f  capacity %5.0f  price %6.3f  %s" % (
            d["name"], d["status"], d["utilisation"], d["effective_capacity"],
            d["price"], d.get("feed_reason") or ""))'
    done
    echo "London client at the fra node: $(dig @127.0.0.1 -p "$DNS_FRA" www.example.com +subnet=$LONDON +short | tr '\n' ' ')"
    "$BIN" explain www.example.com --subnet "$LONDON" --api "http://127.0.0.1:$API_FRA"
}

case ${1:-up} in
up) up ;;
down) down ;;
show) show ;;
stop-origin)
    kill "$(cat "$RUN/$2.pid")" && rm -f "$RUN/$2.pid"
    ;;
start-origin) start_origin "$2" ;;
load)
    ip=127.0.0.2
    [[ ${2:-fra} == iad ]] && ip=127.0.0.3
    n=${3:-20000}
    echo "$n requests to http://$ip:$PROXY/ ..."
    curl -s --no-progress-meter -Z --parallel-max 32 "http://$ip:$PROXY/?n=[1-$n]" >/dev/null
    ;;
*)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
