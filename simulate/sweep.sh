#!/usr/bin/env bash
# The controller over every allowed kind of T and price step, with answers
# cached 1, 3 and 6 load intervals: the standard world's steady scenario,
# 200 intervals, policy `balance`. One line per setting: intervals to
# settle, mean distance vs the optimum, worst utilisation once settled,
# % of demand over capacity over the run. Usage: simulate/sweep.sh [BOLTZ]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/boltz}
zone=$(mktemp --suffix=.toml)
trap 'rm -f "$zone"' EXIT
for t in 0.02 0.05 0.1 0.3 1.0; do
    for step in 0.25 1 3; do
        for cache in 1 3 6; do
            sed -e "s/^\[records\]/[steering]\ntemperature = $t\nprice_step = $step\n\n[records]/" \
                simulate/world.toml >"$zone"
            line=$("$BIN" simulate steady --zone "$zone" --intervals 200 --policies balance \
                --cache-intervals "$cache" --quiet | grep '^balance')
            read -r _ _ _ settle _ ratio worst _ over _ <<<"$line"
            echo "T=$t step=$step cache=$cache: settle vs-opt worst over% = $settle $ratio $worst $over"
        done
    done
done
