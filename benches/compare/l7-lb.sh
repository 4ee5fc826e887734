#!/usr/bin/env bash
# benches/compare/l7-lb.sh — boltz l7's balancing policies side by side in
# front of heterogeneous backends on loopback, every figure from this one
# invocation:
#   4 origins, target/release/examples/l7_backend (examples/l7_backend.rs),
#   three steady with per-request delays DELAYS (ms, default "1 2 4") and a
#   fourth that starts at DEGRADE_FROM ms and degrades to DEGRADE_TO ms
#   (default 1 -> 20) DEGRADE_AT of the way through every wrk run (SIGUSR1
#   to it; SIGUSR2 restores it before the next run);
#   boltz l7 (WORKERS threads), one pool of the 4, restarted fresh for each
#   policy in POLICIES (default "boltzmann p2c-peak-ewma least-request
#   round-robin"); `boltzmann` gets BOLTZMANN_OPTS (a TOML inline-table
#   body, e.g. "t_max = 2, latency_weight = 0"; default: the defaults).
# Per policy: wrk -t WRK_THREADS -c CONNS -d DURATION --latency after
# WARMUP s of wrk; req/s, p50/p90/p99 (wrk's latency distribution), errors
# (non-2xx + socket errors) and the degrading origin's share of the run's
# requests (from the pool's per-backend counters in boltz's API).
#
#   benches/compare/l7-lb.sh              # ~2 min: 20 s runs, 2 rounds
#   QUICK=1 benches/compare/l7-lb.sh      # ~30 s: 5 s runs, 1 round
#   POLICIES="boltzmann" BOLTZMANN_OPTS="t_max = 2" benches/compare/l7-lb.sh
#
# Env: DURATION (s per wrk run, 20; QUICK=1: 5), ROUNDS (2, interleaved;
# medians reported; QUICK=1: 1), WARMUP (s, 3; QUICK=1: 1), CONNS (wrk
# -c, 64), WRK_THREADS (2), WORKERS (boltz workers, 2), DELAYS, DEGRADE_FROM,
# DEGRADE_TO, DEGRADE_AT (0.4), POLICIES, BOLTZMANN_OPTS, PORT_BASE (18600:
# origins +1..+4, boltz +11), SKIP_BUILD=1 (use the binaries already built),
# BOLTZ / BACKEND (other binaries; default under CARGO_TARGET_DIR or
# target/). Needs root (apt-get installs wrk, curl if missing). Every
# process it started is killed by PID on exit (lib.sh).
# Record: benches/compare/results/l7-lb-<date>-<time>.txt (seconds in the
# time, so runs of one minute with different options do not overwrite).
set -euo pipefail

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WORKERS=${WORKERS:-2}
DELAYS=${DELAYS:-1 2 4}
DEGRADE_FROM=${DEGRADE_FROM:-1}
DEGRADE_TO=${DEGRADE_TO:-20}
DEGRADE_AT=${DEGRADE_AT:-0.4}
POLICIES=${POLICIES:-boltzmann p2c-peak-ewma least-request round-robin}
BOLTZMANN_OPTS=${BOLTZMANN_OPTS:-}
PORT_BASE=${PORT_BASE:-18600}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BOLTZ=${BOLTZ:-$TARGET/release/boltz}
BACKEND=${BACKEND:-$TARGET/release/examples/l7_backend}
RESULTS_DIR=$HERE/results
RESULT=$RESULTS_DIR/l7-lb-$(date +%Y-%m-%d-%H%M%S).txt

log() { printf '%s\n' "$*" >&2; }
die() { log "l7-lb.sh: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (apt-get, raising the open-files limit)"

# shellcheck source=lib.sh
source "$HERE/lib.sh"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
install_missing ${need[@]+"${need[@]}"}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release -q --bin boltz --example l7_backend) ||
        die "cargo build --release failed"
fi
[ -x "$BOLTZ" ] || die "no $BOLTZ"
[ -x "$BACKEND" ] || die "no $BACKEND"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ -n "${TMPDIR:-}" ] || mkdir -p "$ROOT/target"
WORK=$(mktemp -d "${TMPDIR:-$ROOT/target}/l7lb.XXXXXX")
REPORT=$WORK/report.txt
: >"$REPORT"
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }

read -ra STEADY <<<"$DELAYS"
N=$((${#STEADY[@]} + 1))
OPORT=()
for i in $(seq 1 "$N"); do OPORT+=($((PORT_BASE + i))); done
BPORT=$((PORT_BASE + 11))
for p in "${OPORT[@]}" "$BPORT"; do
    [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || die "port $p is in use (set PORT_BASE)"
done

wait_http() {  # NAME PORT : until GET / answers 200
    for _ in $(seq 1 100); do
        kill -0 "${PID[$1]}" 2>/dev/null || return 1
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$2/" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}
stop() {  # NAME : TERM, then KILL, the process we started
    local p=${PID[$1]}
    kill -TERM "$p" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.3; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$1]"
}

# ---------------------------------------------------------------- origins
for i in $(seq 0 $((N - 2))); do
    "$BACKEND" --listen "127.0.0.1:${OPORT[$i]}" --delay-ms "${STEADY[$i]}" >"$WORK/origin$i.log" 2>&1 &
    PID[origin$i]=$!
done
DEG=$((N - 1))
"$BACKEND" --listen "127.0.0.1:${OPORT[$DEG]}" --delay-ms "$DEGRADE_FROM" \
    --degraded-delay-ms "$DEGRADE_TO" >"$WORK/origin$DEG.log" 2>&1 &
PID[origin$DEG]=$!
for i in $(seq 0 $DEG); do
    wait_http "origin$i" "${OPORT[$i]}" || die "origin $i does not answer on ${OPORT[$i]}"
done

backends=""
for p in "${OPORT[@]}"; do backends+="  { address = \"127.0.0.1:$p\" },"$'\n'; done

# pool_requests -> the requests counter of each backend, space-separated
pool_requests() {
    curl -s --max-time 5 --unix-socket "$WORK/l7.sock" http://l7/v1/pools/web |
        python3 -c 'import json,sys; print(" ".join(str(b["requests"]) for b in json.load(sys.stdin)["backends"]))'
}

# ---------------------------------------------------------------- header
rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
out "boltz l7 balancing policies  $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) vCPU  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')  boltz $rev"
out "origins: steady ${DELAYS// / ms, } ms; one degrading ${DEGRADE_FROM} -> ${DEGRADE_TO} ms at ${DEGRADE_AT} of each run"
out "wrk -t $WRK_THREADS -c $CONNS -d ${DURATION}s --latency after ${WARMUP}s warm-up; boltz workers = $WORKERS; ROUNDS=$ROUNDS (medians)"
out "boltzmann options: ${BOLTZMANN_OPTS:-defaults}"
out "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
out ""

# ---------------------------------------------------------------- runs
TSV=$WORK/runs.tsv
: >"$TSV"
for r in $(seq 1 "$ROUNDS"); do
    for lb in $POLICIES; do
        extra=""
        [ "$lb" = boltzmann ] && [ -n "$BOLTZMANN_OPTS" ] && extra="boltzmann = { $BOLTZMANN_OPTS }"
        cat >"$WORK/l7.toml" <<EOF
workers = $WORKERS
[[listeners]]
address = "127.0.0.1:$BPORT"
[pools.web]
lb = "$lb"
$extra
backends = [
$backends]
[[routes]]
pool = "web"
EOF
        kill -USR2 "${PID[origin$DEG]}"   # the degrading origin back to normal
        rm -f "$WORK/l7.sock"
        "$BOLTZ" l7 --config "$WORK/l7.toml" --api "unix:$WORK/l7.sock" >"$WORK/boltz.log" 2>&1 &
        PID[boltz]=$!
        wait_http boltz "$BPORT" || { tail -5 "$WORK/boltz.log" >&2; die "boltz l7 ($lb) did not come up"; }
        timeout -k 5 $((WARMUP + 30)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${WARMUP}s" "http://127.0.0.1:$BPORT/" >/dev/null 2>&1 || true
        before=$(pool_requests)
        at=$(python3 -c "print(round($DURATION * $DEGRADE_AT, 2))")
        (sleep "$at" && kill -USR1 "${PID[origin$DEG]}") &
        PID[degrader]=$!
        rc=0
        timeout -k 5 $((DURATION + 30)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${DURATION}s" --latency \
            "http://127.0.0.1:$BPORT/" >"$WORK/wrk.out" 2>&1 || rc=$?
        wait "${PID[degrader]}" 2>/dev/null || true
        unset "PID[degrader]"
        after=$(pool_requests)
        stop boltz
        [ "$rc" = 0 ] && grep -q ' requests in ' "$WORK/wrk.out" || { cat "$WORK/wrk.out" >&2; die "wrk failed for $lb"; }
        line=$(python3 - "$lb" "$r" "$WORK/wrk.out" "$before" "$after" <<'PYEOF'
import re, sys
lb, rnd, text, before, after = sys.argv[1], sys.argv[2], open(sys.argv[3]).read(), sys.argv[4], sys.argv[5]
def ms(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", v)
    return float(m[1]) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[m[2]]
rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", text)[1])
lat = dict(re.findall(r"^\s*(50|90|99)%\s+(\S+)", text, re.M))
errs = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errs += sum(int(x) for x in m.groups()) if m else 0
d = [int(y) - int(x) for x, y in zip(before.split(), after.split())]
shares = [x / max(1, sum(d)) for x in d]
print("\t".join([lb, rnd, f"{rps:.0f}", f"{ms(lat['50']):.2f}", f"{ms(lat['90']):.2f}", f"{ms(lat['99']):.2f}",
                 str(errs), " ".join(f"{s:.3f}" for s in shares)]))
PYEOF
)
        printf '%s\n' "$line" >>"$TSV"
        log "  r$r $line"
    done
done

# ---------------------------------------------------------------- summary
out "raw runs (policy round req/s p50_ms p90_ms p99_ms errors, then each origin's share, the degrading one last):"
sed 's/^/  /' "$TSV" | tee -a "$REPORT"
out ""
out "SUMMARY (medians over rounds; 'degrading' = that origin's share of the run's requests)"
python3 - "$TSV" "$POLICIES" <<'PYEOF' | tee -a "$REPORT"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    runs.setdefault(f[0], []).append(f)
cols = [("policy", 14), ("req/s", 8), ("p50 ms", 7), ("p90 ms", 7), ("p99 ms", 7), ("errors", 6), ("degrading", 9), ("shares", 26)]
print(" | ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(cols)))
for lb in sys.argv[2].split():
    rows = runs.get(lb)
    if not rows:
        continue
    med = lambda i: statistics.median(float(r[i]) for r in rows)
    sh = [statistics.median(float(r[7].split()[k]) for r in rows) for k in range(len(rows[0][7].split()))]
    vals = [lb, f"{med(2):.0f}", f"{med(3):.2f}", f"{med(4):.2f}", f"{med(5):.2f}",
            str(sum(int(r[6]) for r in rows)), f"{sh[-1]:.3f}", " ".join(f"{s:.2f}" for s in sh)]
    print(" | ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}" for i, (v, (_, w)) in enumerate(zip(vals, cols))))
PYEOF
mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULT"
log ""
log "written: $RESULT"
