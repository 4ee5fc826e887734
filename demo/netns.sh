#!/usr/bin/env bash
# The whole boltz system with `boltz l4` in front, in network namespaces on
# this machine (root, and a boltz built with XDP: apt-get install clang
# libbpf-dev before building). Two sites, fra and iad, on one bridge with a
# client; each site has a DNS node (`boltz serve --datacenter`), an L4 node
# (`boltz l4`, generic XDP) and an L7 node (`boltz l4 decap` + `boltz l7`
# with the VIP on its loopback, answering the client directly) in front of
# two python3 origins. Every address is in 10.99.0.0/16, inside namespaces
# this script makes (named bzdemo-*) and removes.
#
#   sudo demo/netns.sh          build, start everything, print what to try; Ctrl-C stops and cleans up
#   sudo demo/netns.sh down     remove what a killed run left behind
#
#            client 10.99.0.10   (VIP fra 10.99.1.100 via 10.99.0.12, iad 10.99.2.100 via .22)
#                |
#   br0 --+------+------+------+------+------+
#        dns    l4     l7     dns    l4     l7
#        .11    .12    .13    .21    .22    .23
#        `------- fra ------'  `------ iad -------'
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BOLTZ:-$ROOT/target/release/boltz}
RUN=${DEMO_DIR:-/tmp/boltz-demo-netns}
P=bzdemo-

ns() { ip netns exec "$P$1" "${@:2}"; }

down() {
    trap - EXIT
    if [[ -e $RUN/pids ]]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$RUN/pids"
        rm -f "$RUN/pids"
    fi
    sleep 0.2
    for n in c fra-d fra-l fra-w iad-d iad-l iad-w sw; do
        ip netns del "$P$n" 2>/dev/null || true
    done
    umount "$RUN/bpf" 2>/dev/null || true
}

host() { # NAME ADDRESS: a namespace on the bridge
    ip netns add "$P$1"
    ip link add eth0 netns "$P$1" type veth peer name "p$1" netns "${P}sw"
    ns sw ip link set "p$1" master br0 up
    ns "$1" ip addr add "$2/24" dev eth0
    ns "$1" ip link set eth0 up
    ns "$1" ip link set lo up
    # Generic XDP sees checksum-offloaded packets with partial sums.
    ns "$1" ethtool -K eth0 tx off >/dev/null
}

start() { # NAMESPACE LOG ARGS...: a daemon in a namespace, its pid kept
    local n=$1 log=$2
    shift 2
    ip netns exec "$P$n" "$@" >"$RUN/$log.out" 2>"$RUN/$log.log" &
    echo $! >>"$RUN/pids"
}

site_toml() { # DC "LAT, LON" NET (1 or 2)
    local dc=$1 loc=$2 net=$3
    local dns=10.99.0.${net}1 l4=10.99.0.${net}2 l7=10.99.0.${net}3
    cat <<EOF

[datacenters.$dc]
location = [$loc]
capacity = 300
ipv4 = ["10.99.$net.100"]
load = { url = "http://$dns:5380/v1/site", interval = "1s", stale_after = "10s" }

[datacenters.$dc.dataplane]
interval = "2s"

[datacenters.$dc.l4]
api = "http://$l4:5390"
token_file = "token"

[[datacenters.$dc.l4.services]]
vip = "tcp:10.99.$net.100:80"
capacity_pps = 100000
backends = [{ address = "$l7" }]

[datacenters.$dc.l7]
api = "http://$l7:5391"
token_file = "token"

[datacenters.$dc.l7.pools.web]
health = { path = "/", interval = "1s", timeout = "1s", rise = 1, fall = 2 }
backends = [{ address = "$l7:9001" }, { address = "$l7:9002" }]

[[datacenters.$dc.l7.routes]]
pool = "web"
EOF
}

up() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "needs root (namespaces, XDP); demo/run.sh runs without" >&2
        exit 1
    fi
    [[ -n ${BOLTZ:-} ]] || (cd "$ROOT" && cargo build --release --bin boltz)
    down
    mkdir -p "$RUN/zones" "$RUN/bpf"
    : >"$RUN/pids"
    trap down EXIT
    trap 'exit 0' INT TERM
    mount -t bpf bpf "$RUN/bpf"
    echo s3cret >"$RUN/zones/token"
    {
        echo "# Both sites, with their insides, for every DNS node."
        site_toml fra "50.11, 8.68" 1
        site_toml iad "38.95, -77.45" 2
    } >"$RUN/zones/datacenters.toml"
    cp "$ROOT/demo/example.com.toml" "$RUN/zones/"
    ip netns add "${P}sw"
    ns sw ip link add br0 type bridge
    ns sw ip link set br0 up
    host c 10.99.0.10
    for dc in fra iad; do
        local net=1
        [[ $dc == iad ]] && net=2
        host "$dc-d" "10.99.0.${net}1"
        host "$dc-l" "10.99.0.${net}2"
        host "$dc-w" "10.99.0.${net}3"
        ns c ip route add "10.99.$net.0/24" via "10.99.0.${net}2"
        # The L7 node holds the VIP and answers the client directly.
        ns "$dc-w" ip addr add "10.99.$net.100/32" dev lo
        ns "$dc-w" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
        ns "$dc-w" "$BIN" l4 decap --iface eth0 --mode generic --bpffs "$RUN/bpf/decap-$dc"
        for o in 1 2; do
            mkdir -p "$RUN/www/$dc-$o"
            echo "hello from $dc-$o" >"$RUN/www/$dc-$o/index.html"
            start "$dc-w" "origin-$dc-$o" python3 -m http.server "900$o" \
                --bind "10.99.0.${net}3" --directory "$RUN/www/$dc-$o"
        done
        cat >"$RUN/l7-$dc.toml" <<EOF
workers = 1
capacity_rps = 300
[[listeners]]
address = "10.99.$net.100:80"
EOF
        start "$dc-w" "l7-$dc" "$BIN" l7 --config "$RUN/l7-$dc.toml" \
            --api "10.99.0.${net}3:5391" --api-token-file "$RUN/zones/token"
        start "$dc-l" "l4-$dc" "$BIN" l4 --iface eth0 --mode generic \
            --api "10.99.0.${net}2:5390" --api-token-file "$RUN/zones/token" \
            --bpffs "$RUN/bpf/l4-$dc" --state "$RUN/l4-$dc.json"
    done
    sleep 1
    for dc in fra iad; do
        local net=1
        [[ $dc == iad ]] && net=2
        start "$dc-d" "dns-$dc" "$BIN" serve --zones "$RUN/zones" --geoip "$ROOT/geoip/demo.mmdb" \
            --datacenter "$dc" --listen "10.99.0.${net}1:53" --api "10.99.0.${net}1:5380"
    done
    for net in 1 2; do
        for _ in $(seq 100); do
            ns c curl -sf "http://10.99.0.${net}1:5380/v1/site" >/dev/null && break
            sleep 0.1
        done
    done
    cat <<EOF
boltz demo with XDP running (logs and config in $RUN). In another terminal, as root:

  ip netns exec ${P}c dig @10.99.0.11 www.example.com +subnet=81.2.69.0/24 +short   # London → fra: 10.99.1.100
  ip netns exec ${P}c dig @10.99.0.21 www.example.com +subnet=67.43.156.0/24 +short # Washington → iad: 10.99.2.100
  ip netns exec ${P}c curl http://10.99.1.100/      # client → XDP (fra's L4) → IP-in-IP → L7 → origin
  ip netns exec ${P}c curl -s http://10.99.0.11:5380/v1/status | python3 -m json.tool | less
  ip netns exec ${P}c curl -s -Z --parallel-max 32 "http://10.99.1.100/?n=[1-6000]" >/dev/null   # load through fra
  ip netns exec ${P}fra-d $BIN explain www.example.com --subnet 81.2.69.0/24 --api http://10.99.0.11:5380

Ctrl-C stops everything and removes the namespaces.
EOF
    wait
}

case ${1:-up} in
up) up ;;
down) down ;;
*)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
