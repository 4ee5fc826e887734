#!/usr/bin/env bash
# benches/compare/dns.sh — boltz beside gdnsd 3.8, knot 3.2 and nsd 4.6 on loopback,
# every figure and ratio measured in this one invocation.
#
#   benches/compare/dns.sh                       # defaults: ~15 min
#   DURATION=5 ROUNDS=1 benches/compare/dns.sh   # quick check: ~3 min
#
# Env knobs: DURATION (s per dnsperf run, 15), ROUNDS (throughput rounds, 3; the
# median is reported), RATE (fixed qps of the latency runs, 20000), PORT_BASE
# (15300; uses PORT_BASE+1..+5 and +81/+82 for boltz's API), KNOT_UDP_WORKERS (1),
# CLIENTS (dnsperf -c, 8), OUTSTANDING (dnsperf -q, 200), SKIP_BUILD=1 (use the
# existing target/release/boltz).
#
# What it does:
#  1. apt-get installs gdnsd, knot + knot-module-geoip, nsd, dnsperf, dnsutils if missing.
#  2. gen_world.py builds a demo world in a temp dir: ~3400 client networks (IPv4
#     /16 and /24 over ~215 /8s, IPv6 /32 and /48) at ~70 real cities of every
#     continent -> `boltz geoip build` -> world.mmdb (GeoIP2-City shape), read by
#     boltz, gdnsd's plugin_geoip and knot's mod-geoip alike. 6 DCs (fra iad sjc
#     sin syd gru), same coordinates and addresses everywhere; steered names www
#     and cdn; the same static data (SOA, NS, A, AAAA, MX, TXT) in all four.
#       boltz: temperature "auto" with no load feed = cold (T = temperature_min
#              = 0.001): always the nearest DC; unknown clients at fra's location.
#       gdnsd: plugin_geoip city-auto-mode (auto_dc_coords = distance sort),
#              service_types up (no health checks); unknown clients -> the
#              `datacenters` order, fra first.
#       knot:  mod-geoip, mode geodb, geodb-key [continent/code, country/iso_code].
#              knot cannot sort by distance: every continent;country key is
#              mapped to the DC nearest to that country's mean city position
#              (precomputed by gen_world.py). For a network far from its
#              country's centre (US west coast, ...) knot's answer is then not
#              the true nearest DC, so the geo work is comparable but not the
#              same; unmatched clients get the zone's www/cdn records (fra).
#       nsd:   static only (no geo); compared on the static mix alone.
#  3. Answer check (a fast wrong server must not win): one check subnet per
#     continent (+1 IPv6) where the true nearest DC and knot's country DC agree,
#     `dig +subnet` against boltz, gdnsd, knot must all give that DC; the static
#     names must answer the same in all servers. Aborts on any mismatch. Then an
#     informative agreement count over 200 sampled networks.
#  4. gen_queries.py writes dnsperf -B (binary, length-prefixed) query files:
#     ecs (80% A/AAAA www/cdn with an ECS subnet from the CSV networks, 20%
#     static/NS/NXDOMAIN), noecs (same, plain EDNS), static (static/NS/NXDOMAIN).
#  5. Every server on its own loopback port, pinned to CPU 1 (taskset); dnsperf
#     pinned to CPU 0. ROUNDS interleaved rounds of DURATION-second saturating
#     runs (round 1 all servers, round 2 all servers, ...); server CPU from
#     /proc/PID/stat (utime+stime, all threads and child processes) -> CPU share
#     and QPS per server core. Then one latency run per server and mix at -Q RATE.
#  6. Summary table + ratios, also written to benches/compare/results/dns-<date>.txt.
# Caveats: 2 vCPUs shared with whatever else runs (the "other load on CPU 1"
# line shows it); dnsperf on one core can be the bottleneck, so compare
# QPS/core (throughput per server core), not raw QPS; loopback only.
set -euo pipefail

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-20000}
PORT_BASE=${PORT_BASE:-15300}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
export KNOT_UDP_WORKERS=${KNOT_UDP_WORKERS:-1}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BOLTZ=$ROOT/target/release/boltz
RESULTS_DIR=$HERE/results
STAMP=$(date +%Y-%m-%d-%H%M)
RESULT=$RESULTS_DIR/dns-$STAMP.txt

P_B1=$((PORT_BASE + 1)) P_B2=$((PORT_BASE + 2)) P_GD=$((PORT_BASE + 3)) P_KN=$((PORT_BASE + 4)) P_NSD=$((PORT_BASE + 5))
P_BR=$((PORT_BASE + 6))

log() { printf '%s\n' "$*" >&2; }
die() { log "dns.sh: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- 1. tools
need=()
command -v gdnsd >/dev/null || need+=(gdnsd)
command -v knotd >/dev/null || need+=(knot)
[ -e /usr/lib/x86_64-linux-gnu/knot/modules-3.2/geoip.so ] || ls /usr/lib/*/knot/modules-*/geoip.so >/dev/null 2>&1 || need+=(knot-module-geoip)
command -v nsd >/dev/null || need+=(nsd)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dig >/dev/null || need+=(dnsutils)
command -v python3 >/dev/null || need+=(python3)
install_missing ${need[@]+"${need[@]}"}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    if ! (cd "$ROOT" && cargo build --release -q 2>"${TMPDIR:-/tmp}/boltz-compare-build.$$"); then
        log "warning: cargo build --release failed (someone mid-edit?); using the last built binary"
        tail -5 "${TMPDIR:-/tmp}/boltz-compare-build.$$" >&2 || true
    fi
    rm -f "${TMPDIR:-/tmp}/boltz-compare-build.$$"
fi
[ -x "$BOLTZ" ] || die "no $BOLTZ; run cargo build --release"

WORK=$(mktemp -d /tmp/boltz-compare.XXXXXX)
REPORT=$WORK/report.txt   # copied to $RESULT only when the run completes
: >"$REPORT"
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }   # printed and recorded

# ---------------------------------------------------------------- 2. world + configs
python3 "$HERE/gen_world.py" "$WORK" "$P_GD" "$P_KN" "$P_NSD" >"$WORK/world.txt"
"$BOLTZ" geoip build "$WORK/networks.csv" -o "$WORK/world.mmdb" >/dev/null
"$BOLTZ" check "$WORK/boltz" --geoip "$WORK/world.mmdb" >/dev/null || die "boltz check failed"
python3 "$HERE/gen_queries.py" "$WORK/networks.csv" "$WORK" >"$WORK/queries.txt"

rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$ROOT" && git status --porcelain -- src crates Cargo.toml 2>/dev/null | wc -l)
out "boltz DNS comparison  $(date -u '+%Y-%m-%d %H:%M UTC')  host $(hostname)  $(nproc) vCPU  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
out "boltz $rev (uncommitted changes in $dirty files of src/, crates/, Cargo.toml), binary built $(date -r "$BOLTZ" '+%F %T')"
out "$(gdnsd -h 2>&1 | grep -m1 version | sed 's/^ *//')  |  $(knotd -V)  |  $(nsd -v 2>&1 | head -1)  |  dnsperf $(dnsperf -h 2>&1 | awk '/^Version/{print $2}')"
out "world: $(cat "$WORK/world.txt"); queries: $(cat "$WORK/queries.txt")"
out "DURATION=$DURATION ROUNDS=$ROUNDS RATE=$RATE  dnsperf -c $CLIENTS -q $OUTSTANDING -T 1 on CPU 0; servers on CPU 1"
out "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)  (machine-wide; other sessions' cargo builds share these 2 vCPUs)"
out ""
out "configs (full files are generated by gen_world.py):"
out "  boltz-t1  boltz serve --threads 1   (temperature auto, T_min 0.001, unknown_location = fra)"
out "  boltz-t2  boltz serve --threads 2   (both threads on CPU 1)"
out "  boltz-rrl boltz serve --threads 1 with response rate limiting on at a rate nothing reaches"
out "            (--rrl-rate 10000000): the limiter's cost when it limits nothing"
out "  gdnsd     udp_threads 1, tcp_threads 1, plugin_geoip city-auto-mode (auto_dc_coords), service_types up"
out "  knot      udp-workers $KNOT_UDP_WORKERS, tcp-workers 1, background-workers 1, edns-client-subnet on,"
out "            mod-geoip geodb [continent/code, country/iso_code] -> nearest DC per country (precomputed)"
out "  nsd       server-count 1, rrl-ratelimit 0 (static data only)"
out ""

# ---------------------------------------------------------------- servers
start() {  # NAME CMD... ; runs CMD on CPU 1, stdout/stderr in $WORK/NAME.log
    local name=$1; shift
    taskset -c 1 "$@" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
}
wait_dns() {  # NAME PORT
    local name=$1 port=$2
    for _ in $(seq 1 50); do
        kill -0 "${PID[$name]}" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at startup"; }
        if dig @127.0.0.1 -p "$port" example.com SOA +short +time=1 +tries=1 2>/dev/null | grep -q hostmaster; then
            return 0
        fi
        sleep 0.2
    done
    cat "$WORK/$name.log" >&2
    die "$name does not answer on port $port"
}

start boltz-t1 "$BOLTZ" serve --zones "$WORK/boltz" --geoip "$WORK/world.mmdb" \
    --listen "127.0.0.1:$P_B1" --api "127.0.0.1:$((PORT_BASE + 81))" --threads 1
start boltz-t2 "$BOLTZ" serve --zones "$WORK/boltz" --geoip "$WORK/world.mmdb" \
    --listen "127.0.0.1:$P_B2" --api "127.0.0.1:$((PORT_BASE + 82))" --threads 2
start boltz-rrl "$BOLTZ" serve --zones "$WORK/boltz" --geoip "$WORK/world.mmdb" \
    --listen "127.0.0.1:$P_BR" --api "127.0.0.1:$((PORT_BASE + 83))" --threads 1 --rrl-rate 10000000
start gdnsd gdnsd -c "$WORK/gdnsd" start
start knot knotd -c "$WORK/knot/knot.conf"
start nsd nsd -d -c "$WORK/nsd/nsd.conf"
declare -A PORT=([boltz-t1]=$P_B1 [boltz-t2]=$P_B2 [boltz-rrl]=$P_BR [gdnsd]=$P_GD [knot]=$P_KN [nsd]=$P_NSD)
for s in boltz-t1 boltz-t2 boltz-rrl gdnsd knot nsd; do wait_dns "$s" "${PORT[$s]}"; done
# knot sets its own thread affinity (UDP worker i -> CPU i, so worker 0 lands on
# dnsperf's CPU 0 despite taskset): re-pin every thread of every server process
# to CPU 1 once they are up, and verify.
for s in boltz-t1 boltz-t2 boltz-rrl gdnsd knot nsd; do
    for p in $(descendants "${PID[$s]}"); do taskset -a -p -c 1 "$p" >/dev/null; done
    for p in $(descendants "${PID[$s]}"); do
        if grep -h Cpus_allowed_list /proc/"$p"/task/*/status | grep -qv $'\t1$'; then
            die "$s: a thread of pid $p is not pinned to CPU 1"
        fi
    done
done
GEO=(boltz-t1 boltz-t2 boltz-rrl gdnsd knot)
ALL=(boltz-t1 boltz-t2 boltz-rrl gdnsd knot nsd)

# ---------------------------------------------------------------- 3. answer check
q() {  # PORT NAME TYPE [SUBNET] -> sorted +short answer on one line
    local sub=()
    [ -n "${4:-}" ] && sub=(+subnet="$4")
    dig @127.0.0.1 -p "$1" "$2" "$3" "${sub[@]}" +short +time=2 +tries=2 | sort | paste -sd' ' -
}
declare -A DCADDR=()
while IFS=, read -r dc a4 a6; do DCADDR[$a4]=$dc; DCADDR[$a6]=$dc; done < <(
    PYTHONDONTWRITEBYTECODE=1 python3 -c "import sys; sys.path.insert(0, '$HERE'); import gen_world as g; [print(f'{d[0]},{d[3]},{d[4]}') for d in g.DCS]")
dcof() { local a=$1; echo "${DCADDR[$a]:-?$a}"; }

out "answer check: one subnet per continent where knot's country DC = the true nearest DC"
printf -v line '%-8s %-3s %-20s %-5s %-8s %-8s %-9s %-8s %-8s %s' where cc subnet near boltz-t1 boltz-t2 boltz-rrl gdnsd knot ok
out "  $line"
bad=0
while IFS=$'\t' read -r where cc subnet near; do
    type=A
    [[ $subnet == *:* ]] && type=AAAA
    row=() okrow=yes
    for s in "${GEO[@]}"; do
        for name in www.example.com cdn.example.com; do
            got=$(dcof "$(q "${PORT[$s]}" "$name" "$type" "$subnet")")
            [ "$got" = "$near" ] || okrow=NO
        done
        row+=("$got")
    done
    [ "$okrow" = yes ] || bad=1
    printf -v line '%-8s %-3s %-20s %-5s %-8s %-8s %-9s %-8s %-8s %s' "$where" "$cc" "$subnet" "$near" "${row[@]}" "$okrow"
    out "  $line"
done <"$WORK/checks.tsv"

out "static names (all six servers):"
for spec in "example.com SOA" "example.com NS" "example.com MX" "example.com TXT" "ns1.example.com A" \
    "mail.example.com A" "mail.example.com AAAA" "v6.example.com AAAA" "txt.example.com TXT" \
    "static.example.com A" "static.example.com AAAA"; do
    read -r name type <<<"$spec"
    ref=$(q "$P_B1" "$name" "$type")
    [ -n "$ref" ] || { out "  $spec: boltz gives nothing"; bad=1; }
    for s in "${ALL[@]}"; do
        got=$(q "${PORT[$s]}" "$name" "$type")
        if [ "$got" != "$ref" ]; then out "  MISMATCH $spec: $s '$got' vs boltz '$ref'"; bad=1; fi
    done
    out "  $(printf '%-26s' "$spec") $ref"
done
for s in "${ALL[@]}"; do
    st=$(dig @127.0.0.1 -p "${PORT[$s]}" nx-check.example.com A +time=2 +tries=2 | grep -o 'status: [A-Z]*')
    [ "$st" = "status: NXDOMAIN" ] || { out "  MISMATCH nx-check.example.com A: $s $st"; bad=1; }
done
out "  nx-check.example.com A     NXDOMAIN everywhere"
[ "$bad" = 0 ] || die "answer check failed: servers disagree (see above)"

# informative: agreement over 200 sampled networks (www A; subnet = the network, or its first /24 or /48)
declare -A AGREE=()
n=0
while IFS=$'\t' read -r sub near country_dc; do
    n=$((n + 1))
    for s in boltz-t1 gdnsd knot; do
        got=$(dcof "$(q "${PORT[$s]}" www.example.com A "$sub")")
        [ "$got" = "$near" ] && AGREE[$s.near]=$((${AGREE[$s.near]:-0} + 1))
        [ "$got" = "$country_dc" ] && AGREE[$s.country]=$((${AGREE[$s.country]:-0} + 1))
    done
done <"$WORK/sample.tsv"
out "agreement over $n sampled networks: answer = true nearest DC: boltz ${AGREE[boltz-t1.near]:-0}, gdnsd ${AGREE[gdnsd.near]:-0}, knot ${AGREE[knot.near]:-0}; = country-mapped DC: knot ${AGREE[knot.country]:-0}"
out ""

# ---------------------------------------------------------------- 5. measurement
TSV=$WORK/results.tsv
: >"$TSV"
run() {  # KIND MIX SERVER ROUND : one dnsperf run, appends a TSV line
    local kind=$1 mix=$2 srv=$3 round=$4 port=${PORT[$3]} extra=() a b res qps lost runtime lat="" share other
    [ "$kind" = lat ] && extra=(-Q "$RATE" -v)
    a=$(python3 "$HERE/cpustat.py" "${PID[$srv]}")
    timeout -k 5 $((DURATION + 30)) taskset -c 0 dnsperf -B -d "$WORK/$mix.bin" -s 127.0.0.1 -p "$port" \
        -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" -T 1 -t 2 "${extra[@]}" >"$WORK/dnsperf.out" 2>&1 ||
        { cat "$WORK/dnsperf.out" >&2; die "dnsperf failed against $srv"; }
    b=$(python3 "$HERE/cpustat.py" "${PID[$srv]}")
    kill -0 "${PID[$srv]}" 2>/dev/null || die "$srv died during the run"
    qps=$(awk '/Queries per second:/{print $4}' "$WORK/dnsperf.out")
    lost=$(awk '/Queries lost:/{print $3}' "$WORK/dnsperf.out")
    [ -n "$qps" ] || { cat "$WORK/dnsperf.out" >&2; die "no dnsperf result for $srv"; }
    read -r share other < <(echo "$a $b" | awk '{w=$4-$1; printf "%.4f %.4f\n", ($5-$2)/w, (($6-$3)-($5-$2))/w}')
    if [ "$kind" = lat ]; then
        lat=$(python3 "$HERE/percentiles.py" "$WORK/dnsperf.out" | awk '{print $1"\t"$2}')
    fi
    rm -f "$WORK/dnsperf.out"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n' "$kind" "$mix" "$srv" "$round" "$qps" "$share" "$other" "$lost" \
        "${lat:+$'\t'$lat}" >>"$TSV"
    log "$(printf '  %-4s %-6s %-9s r%s  %9.0f qps  cpu %5.1f%%  %9.0f qps/core  other %4.1f%%  lost %s %s' \
        "$kind" "$mix" "$srv" "$round" "$qps" "$(awk "BEGIN{print 100*$share}")" \
        "$(awk "BEGIN{print ($share>0)?$qps/$share:0}")" "$(awk "BEGIN{print 100*$other}")" "$lost" \
        "${lat:+p50/p99 us ${lat/$'\t'//}}")"
}
servers_for() { if [ "$1" = static ]; then echo "${ALL[@]}"; else echo "${GEO[@]}"; fi; }

log "warm-up (2 s per server)"
for s in "${ALL[@]}"; do
    timeout 20 taskset -c 0 dnsperf -B -d "$WORK/ecs.bin" -s 127.0.0.1 -p "${PORT[$s]}" -l 2 -c "$CLIENTS" -q "$OUTSTANDING" >/dev/null 2>&1 || true
done
for r in $(seq 1 "$ROUNDS"); do
    log "throughput round $r/$ROUNDS (${DURATION}s runs)"
    for mix in ecs noecs static; do
        for s in $(servers_for $mix); do run tput "$mix" "$s" "$r"; done
    done
done
log "latency runs at -Q $RATE"
for mix in ecs noecs static; do
    for s in $(servers_for $mix); do run lat "$mix" "$s" 0; done
done

# ---------------------------------------------------------------- 5b. thread scaling
# `--threads N` across both cores: boltz-t1 and boltz-t2 are released from
# CPU 1 onto CPUs 0-1, dnsperf runs unpinned with two threads and twice the
# clients (so SO_REUSEPORT has flows to spread), and we record QPS, server
# CPU, QPS per server core and each UDP worker's share of the server CPU.
# With dnsperf sharing the 2 vCPUs, raw QPS cannot double here; what shows
# scaling is that the second thread takes half the work and QPS per server
# core does not fall (no shared lock or cache line between workers).
SCALE=$WORK/scaling.tsv
: >"$SCALE"
worker_ticks() { for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm") == boltz-udp-* ]] && awk '{printf "%s ", $14+$15}' "$t/stat"; done; }
for s in boltz-t1 boltz-t2; do taskset -a -p -c 0,1 "${PID[$s]}" >/dev/null; done
log "thread scaling (both CPUs, dnsperf -T 2 -c $((CLIENTS * 2)))"
for r in $(seq 1 "$ROUNDS"); do
    for s in boltz-t1 boltz-t2; do
        a=$(python3 "$HERE/cpustat.py" "${PID[$s]}") wa=($(worker_ticks "${PID[$s]}"))
        timeout -k 5 $((DURATION + 30)) dnsperf -B -d "$WORK/ecs.bin" -s 127.0.0.1 -p "${PORT[$s]}" \
            -l "$DURATION" -c $((CLIENTS * 2)) -q $((OUTSTANDING * 2)) -T 2 -t 2 >"$WORK/dnsperf.out" 2>&1 ||
            { cat "$WORK/dnsperf.out" >&2; die "dnsperf failed against $s"; }
        b=$(python3 "$HERE/cpustat.py" "${PID[$s]}") wb=($(worker_ticks "${PID[$s]}"))
        qps=$(awk '/Queries per second:/{print $4}' "$WORK/dnsperf.out")
        share=$(echo "$a $b" | awk '{printf "%.4f", ($5-$2)/($4-$1)}')
        split=""
        for i in "${!wa[@]}"; do split+="$((wb[i] - wa[i])) "; done
        printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$qps" "$share" "${split% }" >>"$SCALE"
        log "$(printf '  %-9s r%s  %9.0f qps  cpu %5.1f%%  worker ticks %s' "$s" "$r" "$qps" \
            "$(awk "BEGIN{print 100*$share}")" "$split")"
    done
done

# ---------------------------------------------------------------- 6. summary
out "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
out ""
out "raw runs (kind mix server round qps cpu_share other_share lost [p50_us p99_us]):"
sed 's/^/  /' "$TSV" | tee -a "$REPORT"
out ""
out "SUMMARY  (mixes: ecs = 80% steered A/AAAA with ECS from ~3400 networks; noecs = same without ECS;"
out "          static = static names/NS/NXDOMAIN. qps/core = QPS / server CPU share, median of $ROUNDS rounds)"
python3 "$HERE/report.py" "$TSV" "$RATE" | tee -a "$REPORT"
out ""
out "THREAD SCALING  (boltz on CPUs 0-1, dnsperf -T 2 unpinned, ecs mix; median of $ROUNDS rounds)"
python3 "$HERE/scaling.py" "$SCALE" | tee -a "$REPORT"
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULT"
log ""
log "written: $RESULT"
