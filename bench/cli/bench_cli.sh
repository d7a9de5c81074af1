#!/usr/bin/env bash
# bench_cli.sh - wall time of a whole `eplb plan` run (process start, JSON in, plan, JSON out)
# on 58 layers x 256 experts -> R288 K8 N4 G32, median of RUNS runs, against the goal (50 ms)
# and against DeepSeek's eplb.py planning alone (torch 1.13 CPU, about 0.21 s on this kind of
# machine, as the issue measured it; the Python process start and JSON I/O come on top of that).
#   usage: bench/cli/bench_cli.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
RUNS=${RUNS:-21}
GOAL_MS=50
REF_MS=210
T=$(mktemp -d /tmp/eplb_bench_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
jq '.loads' "$here/../../tests/data/golden/dsv3_like_58x256_r288_g8_n4_gpu32.json" >"$T/loads.json"
for policy in deepseek balanced; do
  times=()
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$B/eplb" plan --input "$T/loads.json" --num_replicas 288 --num_groups 8 --num_nodes 4 \
      --num_gpus 32 --policy $policy --output_path "$T/map.json" 2>/dev/null
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000)))
  done
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  awk -v us="$med" -v goal=$GOAL_MS -v ref=$REF_MS -v p=$policy -v n="$RUNS" 'BEGIN {
    ms = us / 1000.0
    printf "cli plan %-8s 58x256 R288 K8 N4 G32: median %.1f ms over %d runs; goal %d ms: %s; %.0fx faster than eplb.py planning alone (%d ms)\n",
      p, ms, n, goal, (ms <= goal ? "met" : "MISSED"), ref / ms, ref }'
done
