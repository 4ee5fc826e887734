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
#   PACKETS=1000000 ROUNDS=1 SKIP_CRITERION=1 benches/compare/l4.sh
#
# Env: PACKETS per run (3000000), ROUNDS (3, medians), MODE (XDP mode of the
# balancer: native|generic, default native), SKIP_CRITERION=1, DEBUG=1 (print
# the balancer's event counters after each of its runs), CONN_TABLE (boltz
# l4 --conn-table, 1048576), SETUPS (default "boltz nftables forward"), PERF=DIR
# (a CPU-1 perf profile per setup).
#
# Topology: g (generator) --veth-- l:eth0 [balancer] l:eth1 --bridge
# (namespace s)-- b1 b2 b3. A two-armed balancer: packets arrive on eth0
# straight from the generator's veth (as XDP frames, no skb) and leave by
# eth1 towards the backends. The generator is the `trafficgen` XDP program in
# live-frames test-run mode (examples/l4_trafficgen.rs): 64-byte UDP frames to
# the VIP with source ports cycling over 60000 (60000 flows; most packets
# belong to a known flow, as in real traffic). The balancer's receive
# processing on eth0 (XDP, or the kernel's netfilter/forwarding path, up to
# handing the packet to eth1) runs in a NAPI kthread pinned to CPU 1; all
# else (generator, bridge, backends, the boltz l4 daemon, which is control
# plane only) runs on CPU 0. CPU 1's busy time per packet received on eth0 is
# what the balancing stage costs, and 1e9 / that is the packets/s one core of
# it sustains: the figure compared. Needs root.
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
LB_IN=10.88.2.2
GEN=10.88.2.10
GEN_NET=10.88.2.0/24
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
command -v conntrack >/dev/null || need+=(conntrack)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

(cd "$ROOT" && cargo build --release -q --bin boltz --example l4_trafficgen --example l4_xdp_pass)
BOLTZ=$ROOT/target/release/boltz
GENBIN=$ROOT/target/release/examples/l4_trafficgen
PASSBIN=$ROOT/target/release/examples/l4_xdp_pass
WORK=$(mktemp -d /tmp/boltz-l4.XXXXXX)
DAEMON=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null || true; fi
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
for n in g l b1 b2 b3; do ip netns add "$P$n"; done
ip link add eth0 netns "${P}g" type veth peer name eth0 netns "${P}l"
x g ip addr add "$GEN/24" dev eth0
x l ip addr add "$LB_IN/24" dev eth0
declare -A ADDR=([l]=$LB [b1]=${BE[0]} [b2]=${BE[1]} [b3]=${BE[2]})
for n in l b1 b2 b3; do
    dev=eth0
    [ "$n" = l ] && dev=eth1
    ip link add "$dev" netns "$P$n" type veth peer name "p$n" netns "${P}s"
    x s ip link set "p$n" master br0 up
    x s ethtool -K "p$n" gro on >/dev/null
    x "$n" ip addr add "${ADDR[$n]}/24" dev "$dev"
    x "$n" ip link set "$dev" up
done
for n in g l b1 b2 b3; do
    x "$n" ip link set lo up
    x "$n" ip link set eth0 up
    # GRO = NAPI on the receiving veth: frames from the peer's XDP enter it.
    x "$n" ethtool -K eth0 gro on >/dev/null
done
for b in b1 b2 b3; do
    x "$b" ip addr add "$VIP/32" dev lo
    x "$b" ip route add "$GEN_NET" via "$LB"
    x "$b" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
done
x l sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0
x g ip route add "$VIP/32" via "$LB_IN"
mkdir -p "$WORK/bpf"
mount -t bpf bpf "$WORK/bpf"
# Native XDP redirect into a veth reaches the bridge only when the
# bridge-side peer runs an XDP program: a pass-everything one.
[ "$MODE" = native ] && x s "$PASSBIN" pl "$WORK/bpf/pass-pl"
for b in b1 b2 b3; do
    if [ "${BACKENDS:-sink}" = sink ]; then
        # Backends as sinks: what reaches their interface is counted and
        # dropped, so the downstream side costs little and does not
        # saturate CPU 0 (BACKENDS=real: decap and the kernel stack).
        x "$b" "$PASSBIN" eth0 "$WORK/bpf/sink-$b" sink
    else
        x "$b" "$BOLTZ" l4 decap --iface eth0 --mode generic --bpffs "$WORK/bpf/decap-$b" >/dev/null
    fi
done
# Resolve neighbours once (an empty datagram to the discard port).
for b in "${BE[@]}"; do x l bash -c "echo > /dev/udp/$b/9" || true; done
x g bash -c "echo > /dev/udp/$LB_IN/9" || true
sleep 0.5
LBMAC=$(x l cat /sys/class/net/eth0/address)

x l bash -c 'echo 1 > /sys/class/net/eth0/threaded'
# Keep polling for a while when the ring runs dry instead of sleeping until
# the next wake-up: a wake-up per small batch would dominate the cost.
x l bash -c "echo ${DEFER:-0} > /sys/class/net/eth0/napi_defer_hard_irqs; echo ${FLUSH_NS:-0} > /sys/class/net/eth0/gro_flush_timeout"
x s bash -c 'echo 1 > /sys/class/net/pl/threaded'
pin_napi() {  # after every setup: attaching XDP makes new NAPI threads
    local t
    for t in $(pgrep '^napi/eth0-'); do taskset -p -c 1 "$t" >/dev/null; done
    for t in $(pgrep '^napi/pl-'); do taskset -p -c 0 "$t" >/dev/null; done
}
cpu1_busy_ns() { awk '$1=="cpu1"{b=$2+$3+$4+$7+$8; print b*1e9/'"$(getconf CLK_TCK)"'}' /proc/stat; }
rx() { x "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }
# What reached a backend: its rx counter, plus the frames its sink program
# dropped (native XDP drops are not in rx_packets).
rx_backend() {
    local xdp
    xdp=$(x "$1" ethtool -S eth0 | awk '/rx_queue_[0-9]+_xdp_drops/{s+=$2} END{print s+0}')
    echo $(($(rx "$1" eth0) + xdp))
}
rx_backends() { local s=0 b; for b in b1 b2 b3; do s=$((s + $(rx_backend "$b"))); done; echo "$s"; }

setup() {
    case $1 in
    boltz)
        # Not through x(): $! must be the daemon itself (ip and taskset exec it).
        ip netns exec "${P}l" taskset -c 0 "$BOLTZ" l4 --iface eth0 --mode "$MODE" --api "unix:$WORK/l4.sock" \
            --bpffs "$WORK/bpf/lb" --src-v4 "$LB" --state "$WORK/l4.json" --flood-limit 0 --conn-table "${CONN_TABLE:-1048576}" \
            >"$WORK/daemon.log" 2>&1 &
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
    pin_napi
}

teardown() {
    case $1 in
    boltz)
        if [ -n "${DEBUG:-}" ]; then
            curl -s --unix-socket "$WORK/l4.sock" http://l4/metrics | grep '^boltz_l4_events' | grep -v ' 0$' >&2 || true
        fi
        kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
        "$BOLTZ" l4 down --bpffs "$WORK/bpf/lb" >/dev/null
        rm -f "$WORK/l4.json" "$WORK/l4.sock"
        ;;
    nftables) x l nft delete table ip bench; x l conntrack -F >/dev/null 2>&1 || true; x l sysctl -qw net.ipv4.ip_forward=0 ;;
    forward) x l ip route del "$VIP/32"; x l sysctl -qw net.ipv4.ip_forward=0 ;;
    esac
}

TSV=$WORK/runs.tsv
: >"$TSV"
for r in $(seq 1 "$ROUNDS"); do
    for s in ${SETUPS:-boltz nftables forward}; do
        setup "$s"
        a=$(rx_backends) l0=$(rx l eth0) c0=$(cpu1_busy_ns)
        # PERF=DIR: a CPU-1 profile of each setup's run (perf record).
        [ -n "${PERF:-}" ] && { perf record -q -C 1 -o "$PERF/$s.perf" -- sleep 1.5 2>/dev/null & }
        out=$(x g taskset -c 0 "$GENBIN" eth0 "$LBMAC" "$GEN" "$VIP" 5000 "$PACKETS")
        sleep 0.3
        c1=$(cpu1_busy_ns) l1=$(rx l eth0) b=$(rx_backends)
        secs=$(awk '{print $4}' <<<"$out")
        got=$((l1 - l0)) delivered=$((b - a))
        nspp=$(awk -v c="$c0" -v d="$c1" -v n="$got" 'BEGIN{printf "%.0f", (n>0)?(d-c)/n:0}')
        log "  round $r  $(printf '%-8s' "$s")  sent $PACKETS in ${secs}s; balancer took $got, CPU 1 $nspp ns/packet; backends got $delivered"
        # CPU 0 (generator + bridge + backends) is the slower side, so the
        # backends see part of what the balancer sent on; none means broken.
        [ "$delivered" -gt $((got / 20)) ] || { teardown "$s"; die "$s: the backends got $delivered of the $got packets the balancer took"; }
        printf '%s\t%s\t%s\t%s\n' "$s" "$r" "$got" "$nspp" >>"$TSV"
        teardown "$s"
    done
done

REPORT=$WORK/report.txt
{
    echo "boltz l4 comparison  $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) vCPU  kernel $(uname -r)"
    echo "boltz $(cd "$ROOT" && git rev-parse --short HEAD)  XDP mode $MODE (balancer), generic (backend decap); nft $(nft --version | awk '{print $2}')"
    echo "PACKETS=$PACKETS per run, ROUNDS=$ROUNDS, 64-byte UDP frames over 60000 flows; generator, bridge and backends on CPU 0"
    echo "balancer stage = its eth0 NAPI thread on CPU 1: busy ns per packet it took, and 1e9 / that = packets/s per core"
    echo ""
    echo "setup     | balancer ns/pkt | Mpps per core | vs nftables | vs forward"
    python3 - "$TSV" <<'EOF'
import statistics, sys
ns = {}
for line in open(sys.argv[1]):
    s, _r, _n, c = line.rstrip("\n").split("\t")
    ns.setdefault(s, []).append(float(c))
m = {s: statistics.median(v) for s, v in ns.items()}
def ratio(peer, s):
    return f"{m[peer]/m[s]:.2f}" if peer in m else "-"
for s in ("boltz", "nftables", "forward"):
    if s in m:
        print(f"{s:<9} | {m[s]:>15.0f} | {1e3/m[s]:>13.2f} | {ratio('nftables', s):>11} | {ratio('forward', s):>10}")
EOF
} | tee "$REPORT"

if [ "${SKIP_CRITERION:-0}" != 1 ]; then
    echo "" | tee -a "$REPORT"
    echo "criterion (cargo bench --bench l4): Maglev build, table build + swap, program alone per packet" | tee -a "$REPORT"
    (cd "$ROOT" && cargo bench -q --bench l4 >/dev/null 2>&1) || log "cargo bench --bench l4 failed"
    python3 - "$ROOT/target/criterion" <<'EOF' | tee -a "$REPORT"
import json, os, sys
base = sys.argv[1]
for group in ("maglev_build", "apply_swap", "program"):
    d = os.path.join(base, group)
    if not os.path.isdir(d):
        continue
    for bench in sorted(os.listdir(d)):
        f = os.path.join(d, bench, "new", "estimates.json")
        if os.path.exists(f):
            e = json.load(open(f))["median"]
            lo, hi = e["confidence_interval"]["lower_bound"], e["confidence_interval"]["upper_bound"]
            unit, div = ("ms", 1e6) if e["point_estimate"] > 1e5 else ("ns", 1)
            print(f"  {group + '/' + bench:<42} median {e['point_estimate']/div:9.2f} {unit}  [{lo/div:.2f} .. {hi/div:.2f}]")
EOF
    echo "  (program/*: kernel-timed, one packet per run; program/empty_run is the timing overhead in each)" | tee -a "$REPORT"
fi
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULTS_DIR/l4-$STAMP.txt"
log "written: $RESULTS_DIR/l4-$STAMP.txt"
