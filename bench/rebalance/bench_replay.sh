#!/usr/bin/env bash
# bench_replay.sh - online re-balancing (`eplb replay`) on the drifting example series and on the
# real OLMoE counts of ../shared/data/olmoe (five domains in name order: re-plan on one domain,
# serve the next). For each setting it prints max/mean (mean over windows of the busiest device
# over the mean device; 1 = perfect) of the static plan (made on the first window), of online
# re-balancing and of the oracle (each window planned on its own counts), with online as a ratio
# of static; and the expert copies moved per re-plan by online against the baseline, re-planning
# from scratch without the old map at the same points (ratio online / scratch; bytes at 42 MiB,
# a DeepSeek-V3 FP8 expert, per copy).
#   usage: bench/rebalance/bench_replay.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
T=$(mktemp -d /tmp/eplb_bench_replay.XXXXXX)
trap 'rm -rf "$T"' EXIT
real="$here/../../../shared/data/olmoe"
[ -d "$real" ] || real="$here/../../tests/data/olmoe"
mkdir "$T/olmoe"
for f in "$real"/olmoe_*.json; do ln -s "$f" "$T/olmoe/"; done

# run NAME SERIES FLAGS...: one replay, one line of figures.
run() {
  local name=$1 series=$2
  shift 2
  "$B/eplb" replay --input "$series" "$@" --json >"$T/out.json"
  jq -r --arg name "$name" --arg flags "$*" '
    def r(x): (x * 10000 | round) / 10000;
    (.online.replans) as $n |
    (if $n > 0 then .online.copies_moved / $n else 0 end) as $on |
    (if $n > 0 then .scratch.copies_moved / $n else 0 end) as $sc |
    "replay \($name) \($flags): max/mean static \(r(.static.max_over_mean)) online \(r(.online.max_over_mean)) (\(r(.online.max_over_mean / .static.max_over_mean))x static) oracle \(r(.oracle.max_over_mean)) scratch \(r(.scratch.max_over_mean)); copies per re-plan online \(r($on)) vs scratch \(r($sc)) (\(if $sc > 0 then r($on / $sc) else "-" end)x scratch, \(r($on * .expert_bytes / 1048576)) MiB), \($n) re-plans over \(.num_windows) windows"' \
    "$T/out.json"
}

drift="$here/../../examples/drift/series.json"
flat=(--num_replicas 80 --num_gpus 8)
nodes=(--num_replicas 80 --num_gpus 8 --num_groups 8 --num_nodes 2)
run drift "$drift" "${flat[@]}"
run drift "$drift" "${flat[@]}" --max_moves 32
run drift "$drift" "${flat[@]}" --max_moves 8
run drift "$drift" "${flat[@]}" --every 4 --windows 4
run drift "$drift" "${nodes[@]}" --max_moves 32
run olmoe "$T/olmoe" "${flat[@]}"
run olmoe "$T/olmoe" "${flat[@]}" --windows 5
run olmoe "$T/olmoe" "${flat[@]}" --max_moves 16
run olmoe "$T/olmoe" "${nodes[@]}" --max_moves 16
