# benches/compare/lib.sh — sourced by the comparison scripts: cleanup of
# everything a script started, on any exit. A script records each daemon's
# PID in PID[name] and its temp dir in WORK; on exit (or INT/TERM) every
# recorded process and its descendants get SIGTERM, then SIGKILL after 3 s,
# and WORK is removed. Only PIDs the script recorded are touched.
WORK=""
declare -A PID=()
descendants() {  # PID -> PID and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do descendants "$c"; done
}
cleanup() {
    local rc=$? all="" p
    trap - EXIT INT TERM
    for p in "${PID[@]}"; do all+=" $(descendants "$p")"; done
    if [ -n "${all// /}" ]; then
        # shellcheck disable=SC2086
        kill -TERM $all 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 $all 2>/dev/null || break
            sleep 0.3
        done
        kill -KILL $all 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# install_missing PKG... — apt-get install the packages given (if any),
# quietly; needs root. Their own services are not used: the scripts run
# their own instances on high loopback ports.
install_missing() {
    [ $# -gt 0 ] || return 0
    log "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
