#!/usr/bin/env bash
# bench_pair_optimum.sh - two slots per device on real OLMoE counts (64 experts -> R128 G64):
# balanced's max/LB per layer next to the true optimum (duplicates ignored, so a lower bound for
# any plan), bracketed by bench/pair_optimum.py with CBC, and whether the issue's 2-slot goal
# (max/LB <= 1.02) is reachable. Reads ../shared/data/olmoe when it is there, else the three files
# in tests/data/olmoe. Needs Debian's python3 and coinor-cbc (`make bench` installs them).
#   usage: bench/plan/bench_pair_optimum.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
data=$here/../../../shared/data/olmoe
[ -d "$data" ] || data=$here/../../tests/data/olmoe
T=$(mktemp -d /tmp/eplb_bench_pairs.XXXXXX)
trap 'rm -rf "$T"' EXIT
check=--self-check
for f in "$data"/olmoe_*.json; do
  "$B/eplb" plan --input "$f" --num_replicas 128 --num_gpus 64 --policy balanced \
    --hierarchy none --output_path "$T/map.json" 2>/dev/null
  "$B/eplb" report --input "$f" --map "$T/map.json" --json >"$T/report.json"
  /usr/bin/python3 "$here/pair_optimum.py" $check --limit "${LIMIT:-20}" --steps "${STEPS:-3}" \
    "$f" "$T/report.json"
  check=
done
echo "pair optimum: [lo, hi] brackets the optimum with duplicates allowed (a floor for every plan); * = a CBC run hit its time limit (lo then not tight)"
