#!/usr/bin/env bash
# benches/compare/l7.sh — boltz l7 beside haproxy and nginx as HTTP/1.1 reverse
# proxies on loopback, every figure and ratio measured in this one invocation:
#   direct   wrk straight to backend 1 (one backend, no proxy: the ceiling)
#   floor    examples/l7_floor.rs: a TCP relay doing a proxy's system calls
#            and nothing else (client connection paired with a backend
#            connection, bytes copied both ways): the req/s of a proxy with
#            zero user-space cost, which bounds any proxy's ratio to another
#   boltz    boltz l7, pool of the 3 backends, lb p2c-peak-ewma
#   haproxy  mode http, balance roundrobin, option http-keep-alive,
#            http-reuse always (keep-alive and connection reuse to backends)
#   nginx    upstream with keepalive 64, proxy_http_version 1.1,
#            proxy_set_header Connection "", listen reuseport, access_log off
# All three proxies run WORKERS threads/processes (boltz `workers`, haproxy
# `nbthread`, nginx `worker_processes`) and balance over the same three
# backends, target/release/examples/l7_backend (examples/l7_backend.rs: 200
# with a 13-byte body and X-Backend: <port>, keep-alive, BACKEND_THREADS
# threads each). Client keep-alive is unlimited in haproxy and nginx (nginx
# keepalive_requests raised from 1000), so wrk reuses its connections.
#
#   benches/compare/l7.sh                                    # ~3 min
#   SETUPS="direct haproxy nginx" ROUNDS=1 DURATION=3 benches/compare/l7.sh
#   PIN=split benches/compare/l7.sh                          # proxies on CPU 1
#
# Env: HEADERS (same: haproxy and nginx are configured to add the forwarding
# headers boltz adds, X-Forwarded-For/-Proto, Forwarded, Via both ways, so
# all do the same work; bare: their defaults), DURATION (s per wrk run, 10),
# ROUNDS (3, interleaved; medians are
# reported), CONNS (wrk -c, 64), WRK_THREADS (wrk -t, 2), WORKERS (threads or
# processes of every proxy, 2), SETUPS (default "direct floor boltz haproxy nginx"),
# PIN (unset: nothing pinned; "split" = "1/0": every thread of the proxy
# under test on CPU 1, wrk and the backends on CPU 0; "P/L" = any two taskset
# CPU lists; for direct, backend 1 moves to P for its runs), WARMUP (s of wrk
# per setup before the rounds, 2), BACKEND_THREADS (1), PORT_BASE (18400:
# backends on +1..+3, boltz +11, haproxy +12, nginx +13, floor +14), SKIP_BUILD=1 (use
# the binaries already in target/release), BOLTZ / BACKEND (other binaries),
# TMPDIR (where the temp dir goes; default target/).
#
# What it does: apt-get installs wrk, haproxy, nginx, curl if missing (needs
# root), runs `cargo build --release --bin boltz --example l7_backend` (if
# that fails, e.g. mid-edit, the last built binaries are used), starts the 3
# backends and every proxy in SETUPS from configs it writes into a temp dir,
# waits until each answers 200, checks through each setup that the body is
# intact and that 30 requests on one keep-alive connection reach all 3
# backends (distinct X-Backend values), warms up, then runs wrk -t
# WRK_THREADS -c CONNS -d DURATION --latency for ROUNDS rounds of the setups
# in turn. Per run: req/s, p50/p99 (wrk's latency distribution, in us),
# errors (non-2xx + socket errors), CPU-us per request of the proxy
# (utime+stime from /proc/PID/stat of the proxy and all its descendants,
# e.g. nginx workers, across the wrk run, / requests completed), of the
# three backends together and of wrk, and other% (machine busy time none of
# these took, in % of one CPU: other sessions' work). This kernel has no
# IRQ_TIME_ACCOUNTING, so the loopback TCP work (softirq) a process does in
# its own context is in its utime+stime. The summary has medians, the ratios
# to haproxy from the same run, and proxy/wrk CPU (the proxy's CPU-us/req
# over wrk's: wrk does the same work per request in every setup, so this
# cancels host slowdowns that hit every process alike). If the boltz binary
# has no `l7` subcommand, boltz is skipped ("boltz l7 not built yet:
# skipped") and the rest still runs. Every process it started is killed by
# PID and the temp dir removed on exit, also on failure.
# Record: benches/compare/results/l7-<date>-<time>.txt.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WORKERS=${WORKERS:-2}
SETUPS=${SETUPS:-direct floor boltz haproxy nginx}
WARMUP=${WARMUP:-2}
BACKEND_THREADS=${BACKEND_THREADS:-1}
PORT_BASE=${PORT_BASE:-18400}
PIN=${PIN:-}
HEADERS=${HEADERS:-same}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BOLTZ=${BOLTZ:-$ROOT/target/release/boltz}
BACKEND=${BACKEND:-$ROOT/target/release/examples/l7_backend}
FLOOR=${FLOOR:-$ROOT/target/release/examples/l7_floor}
RESULTS_DIR=$HERE/results
STAMP=$(date +%Y-%m-%d-%H%M)
RESULT=$RESULTS_DIR/l7-$STAMP.txt

BPORT=($((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)))
declare -A PORT=([direct]=${BPORT[0]} [boltz]=$((PORT_BASE + 11)) [haproxy]=$((PORT_BASE + 12)) [nginx]=$((PORT_BASE + 13)) [floor]=$((PORT_BASE + 14)))

log() { printf '%s\n' "$*" >&2; }
die() { log "l7.sh: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (apt-get, raising the open-files limit)"
for s in $SETUPS; do [ -n "${PORT[$s]:-}" ] || die "unknown setup '$s' (direct floor boltz haproxy nginx)"; done

case $HEADERS in same | bare) ;; *) die "HEADERS must be same or bare" ;; esac
case $PIN in
'') PROXY_CPUS="" LOAD_CPUS="" ;;
split) PROXY_CPUS=1 LOAD_CPUS=0 ;;
*/*) PROXY_CPUS=${PIN%/*} LOAD_CPUS=${PIN#*/} ;;
*) die "PIN must be empty, split or PROXY_CPUS/LOAD_CPUS (e.g. 1/0)" ;;
esac
on_load() { if [ -n "$LOAD_CPUS" ]; then taskset -c "$LOAD_CPUS" "$@"; else "$@"; fi; }

# ---------------------------------------------------------------- cleanup
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- tools + build
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
install_missing ${need[@]+"${need[@]}"}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    build_log=$(mktemp)
    if ! (cd "$ROOT" && cargo build --release -q --bin boltz --example l7_backend --example l7_floor 2>"$build_log"); then
        log "warning: cargo build --release failed (someone mid-edit?); using the last built binaries"
        tail -5 "$build_log" >&2 || true
    fi
    rm -f "$build_log"
fi
[ -x "$BACKEND" ] || die "no $BACKEND; run cargo build --release --example l7_backend"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"   # the hard limit may be lower
[ -n "${TMPDIR:-}" ] || mkdir -p "$ROOT/target"
WORK=$(mktemp -d "${TMPDIR:-$ROOT/target}/l7bench.XXXXXX")
REPORT=$WORK/report.txt   # copied to $RESULT only when the run completes
: >"$REPORT"
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }   # printed and recorded

for p in "${BPORT[@]}" "${PORT[boltz]}" "${PORT[haproxy]}" "${PORT[nginx]}" "${PORT[floor]}"; do
    [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || die "port $p is in use (set PORT_BASE)"
done

# ---------------------------------------------------------------- processes
start() {  # NAME CPUS CMD... : CMD in the background (on CPUS if set), log in $WORK/NAME.log
    local name=$1 cpus=$2
    shift 2
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 &
    else
        "$@" >"$WORK/$name.log" 2>&1 &
    fi
    PID[$name]=$!
}
stop() {  # NAME
    local all p
    all=$(descendants "${PID[$1]}")
    # shellcheck disable=SC2086
    kill -TERM $all 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 $all 2>/dev/null || break; sleep 0.3; done
    kill -KILL $all 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}
wait_http() {  # NAME PORT : until GET / on PORT answers 200 (1 = the process died or never answered)
    local name=$1 port=$2
    for _ in $(seq 1 100); do
        kill -0 "${PID[$name]}" 2>/dev/null || return 1
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}
pin_all() {  # NAME CPUS : every thread of NAME and its descendants on CPUS, verified
    local p t want
    want=$(cpulist "$2")
    for p in $(descendants "${PID[$1]}"); do taskset -a -p -c "$2" "$p" >/dev/null; done
    for p in $(descendants "${PID[$1]}"); do
        for t in /proc/"$p"/task/*/status; do
            [ "$(cpulist "$(awk '/^Cpus_allowed_list:/{print $2}' "$t")")" = "$want" ] ||
                die "$1: a thread ($t) is not pinned to CPUs $2"
        done
    done
}
cpulist() {  # "0-2,5" -> "0 1 2 5"
    local part out=()
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then mapfile -t -O "${#out[@]}" out < <(seq "${part%-*}" "${part#*-}"); else out+=("$part"); fi
    done
    echo "${out[*]}"
}
# l7stat.py snap PROXY_PIDS BACKEND_PIDS PIN_CPUS -> one line of counters (comma lists, "-" = none);
# l7stat.py row SETUP ROUND WRK_OUT WRK_CPU_S BEFORE AFTER -> one TSV row of the run.
cat >"$WORK/l7stat.py" <<'PYEOF'
import os, re, sys, time

TCK = os.sysconf("SC_CLK_TCK")

def ids(arg):
    return [] if arg == "-" else [int(x) for x in arg.split(",") if x]

def tree_seconds(roots):
    """utime+stime (all threads) of the roots and all their descendants."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                procs[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
            except (OSError, IndexError, ValueError):
                pass
    kids = {}
    for pid, (ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += procs.get(p, (0, 0))[1]
        todo += kids.get(p, [])
    return total / TCK

def cpu_stat(pin):
    """Busy (user nice system irq softirq) and steal machine-wide; busy on the PIN CPUs."""
    busy = steal = pinbusy = 0
    for line in open("/proc/stat"):
        f = line.split()
        if not f[0].startswith("cpu"):
            break
        v = [int(x) for x in f[1:9]]
        if f[0] == "cpu":
            busy, steal = v[0] + v[1] + v[2] + v[5] + v[6], v[7]
        elif int(f[0][3:]) in pin:
            pinbusy += v[0] + v[1] + v[2] + v[5] + v[6]
    return [x / TCK for x in (busy, steal, pinbusy)]

def us(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", v)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7, "h": 3.6e9}[m[2]]

if sys.argv[1] == "snap":
    print(time.monotonic(), tree_seconds(ids(sys.argv[2])), tree_seconds(ids(sys.argv[3])), *cpu_stat(set(ids(sys.argv[4]))))
else:
    setup, rnd, wrk_out, wrk_cpu = sys.argv[2], sys.argv[3], open(sys.argv[4]).read(), float(sys.argv[5])
    a, b = [float(x) for x in sys.argv[6].split()], [float(x) for x in sys.argv[7].split()]
    t, proxy, backends, busy, steal, pinbusy = [y - x for x, y in zip(a, b)]
    n = int(re.search(r"(\d+) requests in", wrk_out)[1])
    rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", wrk_out)[1])
    lat = dict(re.findall(r"^\s*(50|99)%\s+(\S+)", wrk_out, re.M))
    errs = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", wrk_out))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk_out)
    errs += sum(int(x) for x in m.groups()) if m else 0
    other = max(0.0, busy - proxy - backends - wrk_cpu) / t
    pin = f"{pinbusy * 1e6 / n:.3f}" if sys.argv[8] != "-" else "-"
    print("\t".join([setup, rnd, f"{rps:.0f}", f"{us(lat['50']):.0f}", f"{us(lat['99']):.0f}", str(n), str(errs),
                     f"{proxy * 1e6 / n:.3f}", f"{backends * 1e6 / n:.3f}", f"{wrk_cpu * 1e6 / n:.3f}",
                     pin, f"{100 * other:.1f}", f"{100 * steal / t:.1f}"]))
PYEOF
snap() {  # SETUP -> counters before/after a run
    local pp=- pin=-
    [ "$1" = direct ] || pp=$(descendants "${PID[$1]}" | paste -sd,)
    [ -n "$PROXY_CPUS" ] && pin=$(cpulist "$PROXY_CPUS" | tr ' ' ,)
    python3 "$WORK/l7stat.py" snap "$pp" "$(IFS=,; echo "${BACKEND_PIDS[*]}")" "$pin"
}

# ---------------------------------------------------------------- backends
for i in 0 1 2; do
    start "backend$((i + 1))" "$LOAD_CPUS" "$BACKEND" --listen "127.0.0.1:${BPORT[$i]}" --threads "$BACKEND_THREADS"
done
for i in 0 1 2; do
    wait_http "backend$((i + 1))" "${BPORT[$i]}" || { cat "$WORK/backend$((i + 1)).log" >&2; die "backend $((i + 1)) does not answer on ${BPORT[$i]}"; }
done
BACKEND_PIDS=("${PID[backend1]}" "${PID[backend2]}" "${PID[backend3]}")

# ---------------------------------------------------------------- proxy configs
# HEADERS=same (default): haproxy and nginx add the forwarding headers boltz
# always adds (X-Forwarded-For appended, X-Forwarded-Proto, Forwarded with
# for/proto/host, Via on requests and responses), so every proxy does the
# same work and the backends and wrk parse the same heads. HEADERS=bare:
# their defaults (none of these).
if [ "$HEADERS" = same ]; then
    HAPROXY_HEADERS='    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request add-header Forwarded "for=%[src];proto=http;host=\"%[req.hdr(host)]\""
    http-request add-header Via "1.1 haproxy"
    http-response add-header Via "1.1 haproxy"'
    NGINX_HEADERS='            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$host\"";
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx";'
else
    HAPROXY_HEADERS="" NGINX_HEADERS=""
fi
cat >"$WORK/l7.toml" <<EOF
workers = $WORKERS
[[listeners]]
address = "127.0.0.1:${PORT[boltz]}"
[pools.web]
lb = "p2c-peak-ewma"
backends = [
  { address = "127.0.0.1:${BPORT[0]}" },
  { address = "127.0.0.1:${BPORT[1]}" },
  { address = "127.0.0.1:${BPORT[2]}" },
]
[[routes]]
pool = "web"
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend web
backend web
    balance roundrobin
$HAPROXY_HEADERS
    server b1 127.0.0.1:${BPORT[0]}
    server b2 127.0.0.1:${BPORT[1]}
    server b3 127.0.0.1:${BPORT[2]}
EOF

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
user root;
worker_processes $WORKERS;
worker_rlimit_nofile $(ulimit -n);
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    upstream web {
        server 127.0.0.1:${BPORT[0]};
        server 127.0.0.1:${BPORT[1]};
        server 127.0.0.1:${BPORT[2]};
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} reuseport;
        location / {
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$NGINX_HEADERS
        }
    }
}
EOF

# ---------------------------------------------------------------- header
rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$ROOT" && { git status --porcelain -- src crates Cargo.toml examples 2>/dev/null || true; } | wc -l)
ver_haproxy=$(command -v haproxy >/dev/null && haproxy -v 2>/dev/null | awk 'NR==1{print $3}' || echo '?')
ver_nginx=$(command -v nginx >/dev/null && nginx -v 2>&1 | sed 's/.*nginx\///' || echo '?')
ver_wrk=$( (wrk -v 2>&1 || true) | awk 'NR==1{print $2}')
out "boltz L7 comparison  $(date -u '+%Y-%m-%d %H:%M UTC')  host $(hostname)  $(nproc) vCPU  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')  kernel $(uname -r)"
if [ -x "$BOLTZ" ]; then
    out "boltz $rev (uncommitted changes in $dirty files of src/, crates/, examples/, Cargo.toml), binary built $(date -r "$BOLTZ" '+%F %T')"
else
    out "boltz $rev (no binary at $BOLTZ)"
fi
out "haproxy $ver_haproxy  |  nginx $ver_nginx  |  wrk $ver_wrk  |  l7_backend built $(date -r "$BACKEND" '+%F %T')"
out "wrk -t $WRK_THREADS -c $CONNS -d ${DURATION}s --latency; ROUNDS=$ROUNDS (medians); WORKERS=$WORKERS per proxy; 3 backends x $BACKEND_THREADS thread(s), 13-byte body"
if [ -n "$PIN" ]; then
    out "PIN=$PIN: every thread of the proxy on CPU(s) $PROXY_CPUS; wrk and the backends on CPU(s) $LOAD_CPUS (direct: backend 1 on $PROXY_CPUS during its runs)"
else
    out "PIN unset: nothing pinned; proxy, backends and wrk share all $(nproc) CPUs"
fi
out "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)  (machine-wide; other sessions' work shares these CPUs)"
out ""
out "configs:"
out "  direct   wrk -> backend 1 (127.0.0.1:${BPORT[0]}), no proxy"
out "  floor    l7_floor --threads $WORKERS: TCP relay, a proxy's system calls and no HTTP work (client conns paired with backends in turn)"
out "  boltz    boltz l7, workers = $WORKERS, pool of 3, lb = p2c-peak-ewma"
out "  haproxy  nbthread $WORKERS, mode http, balance roundrobin, option http-keep-alive, http-reuse always"
out "  HEADERS=$HEADERS: $([ "$HEADERS" = same ] && echo "haproxy and nginx add X-Forwarded-For/-Proto, Forwarded and Via as boltz does" || echo "haproxy and nginx add no forwarding headers; boltz always does")"
out "  nginx    worker_processes $WORKERS, listen reuseport, upstream keepalive 64 (keepalive_requests 1000000),"
out "           proxy_http_version 1.1, proxy_set_header Connection \"\", access_log off"
out ""

# ---------------------------------------------------------------- proxies
ACTIVE=()
for s in $SETUPS; do
    case $s in
    direct) ACTIVE+=(direct); continue ;;
    boltz)
        if [ ! -x "$BOLTZ" ] || ! "$BOLTZ" l7 --help >/dev/null 2>&1; then
            out "boltz l7 not built yet: skipped"
            continue
        fi
        start boltz "$PROXY_CPUS" "$BOLTZ" l7 --config "$WORK/l7.toml" --api "unix:$WORK/l7.sock"
        ;;
    floor)
        [ -x "$FLOOR" ] || { out "no $FLOOR: floor skipped"; continue; }
        start floor "$PROXY_CPUS" "$FLOOR" --listen "127.0.0.1:${PORT[floor]}" --threads "$WORKERS" \
            --backend "127.0.0.1:${BPORT[0]}" --backend "127.0.0.1:${BPORT[1]}" --backend "127.0.0.1:${BPORT[2]}"
        ;;
    haproxy) start haproxy "$PROXY_CPUS" haproxy -db -f "$WORK/haproxy.cfg" ;;
    nginx) start nginx "$PROXY_CPUS" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx-error.log" ;;
    esac
    if wait_http "$s" "${PORT[$s]}"; then
        ACTIVE+=("$s")
        [ -n "$PROXY_CPUS" ] && pin_all "$s" "$PROXY_CPUS"
    else
        out "$s did not come up on ${PORT[$s]}: skipped"
        { tail -5 "$WORK/$s.log"; [ "$s" != nginx ] || tail -5 "$WORK/nginx-error.log"; } 2>/dev/null | sed 's/^/    /' | tee -a "$REPORT" >&2 || true
        stop "$s"
    fi
done
[ ${#ACTIVE[@]} -gt 0 ] || die "nothing to measure"

# ---------------------------------------------------------------- checks
out "check: body through each setup, and 30 requests on one keep-alive connection (distinct X-Backend)"
for s in "${ACTIVE[@]}"; do
    url="http://127.0.0.1:${PORT[$s]}/"
    body=$(curl -s --max-time 5 "$url")
    [ "$body" = "hello world!" ] || die "$s: unexpected body '$body'"
    urls=()
    for _ in $(seq 1 30); do urls+=("$url"); done
    spread=$(curl -s --max-time 10 -o /dev/null -D - "${urls[@]}" | tr -d '\r' |
        awk -F': ' 'tolower($1)=="x-backend"{n[$2]++; t++} END{for (k in n) printf "%s:%d ", k, n[k]; printf "| %d distinct of %d answers\n", length(n), t}')
    distinct=$(awk '{print $(NF-4)}' <<<"$spread")
    verdict=ok
    if [ "$s" = direct ] || [ "$s" = floor ]; then
        # floor pairs each client connection with one backend connection
        [ "$distinct" = 1 ] || verdict="UNEXPECTED ($s should hit one backend per connection)"
    elif [ "$distinct" != 3 ]; then
        verdict="WARNING: not spread over the 3 backends"
    fi
    via=$(curl -s --max-time 5 -o /dev/null -D - "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="via"{printf "%s", $2}')
    out "  $(printf '%-8s' "$s") $spread  $verdict  (response Via: ${via:-none})"
done
out ""

# ---------------------------------------------------------------- measurement
WRK_CPU=$WORK/wrk.cpu
run_wrk() {  # PORT SECONDS -> wrk's output; its CPU seconds (rusage) into $WRK_CPU
    on_load python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f\n" % (u.ru_utime + u.ru_stime))
sys.exit(r.returncode)' "$WRK_CPU" timeout -k 5 $(($2 + 30)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${2}s" --latency "http://127.0.0.1:$1/"
}
proxy_pids() { [ "$1" = direct ] || echo "${PID[$1]}"; }
direct_pin() {  # on|off : with PIN, backend 1 on the proxy CPUs during direct runs
    [ -n "$PIN" ] || return 0
    local cpus=$LOAD_CPUS
    [ "$1" = on ] && cpus=$PROXY_CPUS
    local p
    for p in $(descendants "${PID[backend1]}"); do taskset -a -p -c "$cpus" "$p" >/dev/null; done
}

log "warm-up (${WARMUP} s per setup)"
for s in "${ACTIVE[@]}"; do
    [ "$s" = direct ] && direct_pin on
    run_wrk "${PORT[$s]}" "$WARMUP" >/dev/null 2>&1 || true
    [ "$s" = direct ] && direct_pin off
done

TSV=$WORK/runs.tsv
: >"$TSV"
declare -A DEAD=()
for r in $(seq 1 "$ROUNDS"); do
    log "round $r/$ROUNDS (${DURATION}s runs)"
    for s in "${ACTIVE[@]}"; do
        [ -n "${DEAD[$s]:-}" ] && continue
        [ "$s" = direct ] && direct_pin on
        before=$(snap "$s")
        rc=0
        run_wrk "${PORT[$s]}" "$DURATION" >"$WORK/wrk.out" 2>&1 || rc=$?
        after=$(snap "$s")
        [ "$s" = direct ] && direct_pin off
        alive=yes
        for p in $(proxy_pids "$s") "${BACKEND_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || alive=no; done
        if [ "$rc" != 0 ] || [ "$alive" = no ] || ! grep -q ' requests in ' "$WORK/wrk.out"; then
            cat "$WORK/wrk.out" >&2
            DEAD[$s]="failed in round $r (wrk exit $rc, processes alive: $alive)"
            log "  $s ${DEAD[$s]}: dropped"
            continue
        fi
        line=$(python3 "$WORK/l7stat.py" row "$s" "$r" "$WORK/wrk.out" "$(cat "$WRK_CPU")" "$before" "$after" "${PROXY_CPUS:--}")
        printf '%s\n' "$line" >>"$TSV"
        IFS=$'\t' read -r _ _ rps p50 p99 _ e pc bc wc pb oth _ <<<"$line"
        [ "$s" = direct ] && pc=-
        log "$(printf '  %-8s r%s  %7s req/s  p50 %5s us  p99 %6s us  CPU-us/req: proxy %6s backends %6s wrk %6s%s  other %5s%%  err %s' \
            "$s" "$r" "$rps" "$p50" "$p99" "$pc" "$bc" "$wc" "$([ "$pb" = - ] || echo " CPU$PROXY_CPUS-busy $pb")" "$oth" "$e")"
    done
done

# ---------------------------------------------------------------- summary
out "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in "${!DEAD[@]}"; do out "$s: ${DEAD[$s]}; dropped from later rounds"; done
out ""
out "raw runs (setup round req/s p50_us p99_us requests errors, then CPU-us/req of: proxy backends wrk"
out "  proxy-CPUs-busy (PIN only), then other% steal% (in % of one CPU)):"
sed 's/^/  /' "$TSV" | tee -a "$REPORT"
out ""
out "SUMMARY  (medians of $ROUNDS rounds. CPU-us/req = CPU time / requests completed: proxy = utime+stime of its processes,"
out "          backends = of the three (process times include the kernel's loopback TCP work done in their context);"
[ -n "$PIN" ] && out "          CPU$PROXY_CPUS busy = all busy time (softirq included) on the proxy's CPU(s) $PROXY_CPUS;"
out "          proxy/wrk CPU = the proxy's CPU-us/req over wrk's in the same run: wrk does the same work per request"
out "          in every setup, so this cancels host slowdowns that hit every process alike (the steadier cost figure);"
out "          vs haproxy = ratio to haproxy in this run (req/s: higher is better; CPU/req: lower is cheaper);"
out "          spread = (max-min)/median over the rounds of req/s and of the proxy's CPU-us/req (direct: the backends');"
out "          other% = machine busy time not taken by proxy, backends or wrk (other work), in % of one CPU)"
python3 - "$TSV" "$SETUPS" "${PROXY_CPUS:-}" <<'EOF' | tee -a "$REPORT"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    runs.setdefault(f[0], []).append(f)
pin = sys.argv[3]
def med(rows, i):
    return statistics.median(float(r[i]) for r in rows)
m = {}
for s, rows in runs.items():
    rps = [float(r[2]) for r in rows]
    m[s] = dict(rps=med(rows, 2), p50=med(rows, 3), p99=med(rows, 4), err=sum(int(r[6]) for r in rows),
                proxy=med(rows, 7), backends=med(rows, 8),
                pinbusy=med(rows, 10) if pin else 0, other=med(rows, 11),
                norm=statistics.median(float(r[7]) / float(r[9]) for r in rows),
                spread=(max(rps) - min(rps)) / statistics.median(rps) * 100)
    cpu = [float(r[8] if s == "direct" else r[7]) for r in rows]   # the proxy's (direct: the backends') CPU/req
    m[s]["cspread"] = (max(cpu) - min(cpu)) / statistics.median(cpu) * 100 if min(cpu) > 0 else 0
h = m.get("haproxy")
def ratio(s, key):
    if not h or h[key] <= 0 or (s == "direct" and key in ("proxy", "norm")):
        return "-"
    return f"{m[s][key] / h[key]:.2f}"
cols = [("setup", 8), ("req/s", 8), ("p50 us", 7), ("p99 us", 7), ("proxy CPU-us/req", 16), ("backends", 8)]
if pin:
    cols.append((f"CPU{pin} busy us/req", 18))
cols += [("proxy/wrk CPU", 13), ("req/s vs haproxy", 16), ("CPU/req vs haproxy", 18), ("proxy/wrk vs haproxy", 20)]
if pin:
    cols.append((f"CPU{pin} busy vs haproxy", 22))
cols += [("spread req/s,CPU", 16), ("other%", 6), ("errors", 6)]
print(" | ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(cols)))
for s in sys.argv[2].split():
    if s not in m:
        print(f"{s:<8} | (not measured)")
        continue
    x = m[s]
    row = [s, f"{x['rps']:.0f}", f"{x['p50']:.0f}", f"{x['p99']:.0f}", "-" if s == "direct" else f"{x['proxy']:.2f}",
           f"{x['backends']:.2f}"]
    if pin:
        row.append(f"{x['pinbusy']:.2f}")
    row += ["-" if s == "direct" else f"{x['norm']:.2f}", ratio(s, "rps"), ratio(s, "proxy"), ratio(s, "norm")]
    if pin:
        row.append(ratio(s, "pinbusy"))
    row += [f"{x['spread']:.0f}%, {x['cspread']:.0f}%", f"{x['other']:.1f}", str(x["err"])]
    print(" | ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}" for i, (v, (_, w)) in enumerate(zip(row, cols))))
EOF
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULT"
log ""
log "written: $RESULT"
