#!/usr/bin/env bash
# benches/compare/l4.sh — boltz l4 beside the kernel's own L4 balancing, in one
# namespace topology and one run:
#   boltz    boltz l4 (XDP Maglev, IP-in-IP to the backends, decap by XDP there)
#   nftables nftables DNAT by jhash of the 5-tuple over the 3 backends, with
#            conntrack (how people balance without IPVS; this kernel has no IPVS)
#   forward  plain kernel IP forwarding of the VIP to one backend (the floor)
# then the criterion figures of the program alone (BPF_PROG_TEST_RUN timing)
# and of a table build + swap for 1000 backends.
#
#   benches/compare/l4.sh                        # ~5 min
#   PACKETS=1000000 ROUNDS=1 benches/compare/l4.sh
#
# Env: PACKETS per run (3000000), ROUNDS (3, medians), MODE (XDP mode of the
# balancer: native|generic, default native), SKIP_CRITERION=1.
#
# Topology: namespaces g (generator), l (balancer), b1..b3 (backends) on one
# bridge (namespace s). The generator is the `trafficgen` XDP program in
# live-frames test-run mode (examples/l4_trafficgen.rs): 64-byte UDP frames
# to the VIP, each with a new source port (every packet a new flow: the
# worst case for conntrack and for the connection table alike), sent
# from CPU 0; everything downstream (bridge, balancer, backends) runs in
# softirq on that CPU too, so the figure is the whole pipeline's packets/s
# delivered to the backends (sum of their rx counters) and the ratios
# between setups are what the balancer stage costs. Needs root.
set -euo pipefail

PACKETS=${PACKETS:-3000000}
ROUNDS=${ROUNDS:-3}
MODE=${MODE:-native}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RESULTS_DIR=$HERE/results
STAMP=$(date +%Y-%m-%d-%H%M)
P=bzb$$
VIP=10.88.1.100
LB=10.88.0.2
GEN=10.88.0.10
BE=(10.88.0.11 10.88.0.12 10.88.0.13)

log() { printf '%s\n' "$*" >&2; }
die() { log "l4.sh: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP)"

need=()
command -v clang >/dev/null || need+=(clang)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v ip >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
command -v nft >/dev/null || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

(cd "$ROOT" && cargo build --release -q --bin boltz --example l4_trafficgen)
BOLTZ=$ROOT/target/release/boltz
GENBIN=$ROOT/target/release/examples/l4_trafficgen
WORK=$(mktemp -d /tmp/boltz-l4.XXXXXX)
DAEMON=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    for n in g l b1 b2 b3 s; do ip netns del "$P$n" 2>/dev/null || true; done
    mountpoint -q "$WORK/bpf" && umount "$WORK/bpf"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

# ---------------------------------------------------------------- topology
ip netns add "${P}s"
x s ip link add br0 type bridge
x s ip link set br0 up
declare -A ADDR=([g]=$GEN [l]=$LB [b1]=${BE[0]} [b2]=${BE[1]} [b3]=${BE[2]})
for n in g l b1 b2 b3; do
    ip netns add "$P$n"
    ip link add eth0 netns "$P$n" type veth peer name "p$n" netns "${P}s"
    x s ip link set "p$n" master br0 up
    # GRO (NAPI) on the bridge side lets XDP_TX / live frames enter it.
    x s ethtool -K "p$n" gro on >/dev/null
    x "$n" ip addr add "${ADDR[$n]}/24" dev eth0
    x "$n" ip link set eth0 up
    x "$n" ip link set lo up
    x "$n" ethtool -K eth0 gro on >/dev/null
done
for b in b1 b2 b3; do
    x "$b" ip addr add "$VIP/32" dev lo
    x "$b" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
done
x l sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
x g ip route add "$VIP/32" via "$LB"
mkdir -p "$WORK/bpf"
mount -t bpf bpf "$WORK/bpf"
for b in b1 b2 b3; do
    x "$b" "$BOLTZ" l4 decap --iface eth0 --mode generic --bpffs "$WORK/bpf/decap-$b" >/dev/null
done
# Resolve neighbours both ways once.
for b in "${BE[@]}"; do x l ping -c1 -W1 "$b" >/dev/null; done
x g ping -c1 -W1 "$LB" >/dev/null
LBMAC=$(x l cat /sys/class/net/eth0/address)

rx_total() { local s=0 v; for b in b1 b2 b3; do v=$(x "$b" cat /sys/class/net/eth0/statistics/rx_packets); s=$((s + v)); done; echo "$s"; }
rx_each() { for b in b1 b2 b3; do printf '%s ' "$(x "$b" cat /sys/class/net/eth0/statistics/rx_packets)"; done; }

setup() {
    case $1 in
    boltz)
        x l "$BOLTZ" l4 --iface eth0 --mode "$MODE" --api "unix:$WORK/l4.sock" --bpffs "$WORK/bpf/lb" \
            --state "$WORK/l4.json" --flood-limit 0 >"$WORK/daemon.log" 2>&1 &
        DAEMON=$!
        for _ in $(seq 50); do [ -S "$WORK/l4.sock" ] && break; sleep 0.1; done
        curl -sf --unix-socket "$WORK/l4.sock" -X PUT "http://l4/v1/services/udp:$VIP:5000" \
            -d "{\"version\":1,\"backends\":[{\"address\":\"${BE[0]}\"},{\"address\":\"${BE[1]}\"},{\"address\":\"${BE[2]}\"}]}" >/dev/null ||
            { cat "$WORK/daemon.log" >&2; die "PUT failed"; }
        ;;
    nftables)
        x l sysctl -qw net.ipv4.ip_forward=1
        x l nft -f - <<EOF
table ip bench {
    chain pre {
        type nat hook prerouting priority dstnat;
        ip daddr $VIP udp dport 5000 dnat to jhash ip saddr . ip daddr . udp sport . udp dport mod 3 seed 0xb017 map { 0 : ${BE[0]}, 1 : ${BE[1]}, 2 : ${BE[2]} }
    }
}
EOF
        ;;
    forward)
        x l sysctl -qw net.ipv4.ip_forward=1
        x l ip route add "$VIP/32" via "${BE[0]}"
        ;;
    esac
}

teardown() {
    case $1 in
    boltz)
        kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
        "$BOLTZ" l4 down --bpffs "$WORK/bpf/lb" >/dev/null
        rm -f "$WORK/l4.json"
        ;;
    nftables) x l nft delete table ip bench; x l sysctl -qw net.ipv4.ip_forward=0; x l conntrack -F 2>/dev/null || true ;;
    forward) x l ip route del "$VIP/32"; x l sysctl -qw net.ipv4.ip_forward=0 ;;
    esac
}

TSV=$WORK/runs.tsv
: >"$TSV"
command -v curl >/dev/null || die "needs curl"
for r in $(seq 1 "$ROUNDS"); do
    for setup_name in boltz nftables forward; do
        setup "$setup_name"
        a=$(rx_total)
        out=$(x g taskset -c 0 "$GENBIN" eth0 "$LBMAC" "$GEN" "$VIP" 5000 "$PACKETS")
        sleep 0.5
        b=$(rx_total)
        secs=$(awk '{print $4}' <<<"$out")
        pps=$(awk -v d=$((b - a)) -v s="$secs" 'BEGIN{printf "%.0f", d/s}')
        log "  round $r  $(printf '%-8s' "$setup_name")  delivered $((b - a)) of $PACKETS in ${secs}s = $pps pps  (per backend: $(rx_each))"
        printf '%s\t%s\t%s\t%s\n' "$setup_name" "$r" "$pps" "$((b - a))" >>"$TSV"
        teardown "$setup_name"
    done
done

REPORT=$WORK/report.txt
{
    echo "boltz l4 comparison  $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) vCPU  kernel $(uname -r)"
    echo "boltz $(cd "$ROOT" && git rev-parse --short HEAD)  XDP mode $MODE (balancer), generic (backend decap); nft $(nft --version | awk '{print $2}')"
    echo "PACKETS=$PACKETS per run, ROUNDS=$ROUNDS, 64-byte UDP frames, every packet a new flow (new source port)"
    echo ""
    echo "setup     | median delivered pps | vs nftables | vs forward"
    python3 - "$TSV" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    s, _r, pps, _n = line.split("\t")
    runs.setdefault(s, []).append(float(pps))
med = {s: statistics.median(v) for s, v in runs.items()}
for s in ("boltz", "nftables", "forward"):
    print(f"{s:<9} | {med[s]:>20.0f} | {med[s]/med['nftables']:>11.2f} | {med[s]/med['forward']:>10.2f}")
EOF
} | tee "$REPORT"

if [ "${SKIP_CRITERION:-0}" != 1 ]; then
    echo "" | tee -a "$REPORT"
    echo "criterion (cargo bench --bench l4): program alone per packet, Maglev build, table build + swap" | tee -a "$REPORT"
    (cd "$ROOT" && cargo bench -q --bench l4 2>/dev/null) | grep -E "^[a-z_]+/|time:" | paste - - |
        awk '{printf "  %-40s %s %s %s %s\n", $1, $3, $4, $5, $6}' | tee -a "$REPORT"
fi
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/l4-$STAMP.txt"
log "written: $RESULTS_DIR/l4-$STAMP.txt"
