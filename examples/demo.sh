#!/usr/bin/env bash
# demo.sh - the README demo: the three steps of eplb end to end on this machine.
#   Step 1  4 ranks run a synthetic MoE router under mpirun, count expert hits in memory and
#           gather them into token_collects_all.json (atomic write).
#   Step 2  plan a redundant-expert map from the real OLMoE counts shipped in examples/ (and from
#           the simulated counts), then report its balance against the lower bound.
#   Step 3  8 ranks move expert weights from the initial layout to the map, verifying every byte.
# usage: examples/demo.sh [BUILD_DIR]   (outputs go to BUILD_DIR/demo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../build}" && pwd)
EPLB=$B/eplb
OUT=$B/demo
rm -rf "$OUT"
mkdir -p "$OUT/collect"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN="mpirun --oversubscribe"

cat >"$OUT/eplb.yaml" <<YAML
generate:
  token_collects: true
  token_save_path: $OUT/collect
  expert_map_path: $OUT/expert_map.json
YAML

echo "== Step 1: collect (4 ranks, synthetic router: 4 layers x 64 experts, top-8)"
$MPIRUN -np 4 "$EPLB" simulate --config "$OUT/eplb.yaml" --layers 4 --experts 64 --topk 8 \
  --tokens 4096 --steps 8 --seed 1 --skew 1.0
ls -l "$OUT/collect/token_collects_all.json"

echo
echo "== Step 2: plan (real OLMoE counts from examples/: 3 layers x 64 experts -> 80 slots on 8 devices)"
"$here/eplb.sh" "$EPLB" "$here" "$OUT/expert_map.json"
"$EPLB" plan --json_folder "$OUT/collect" --num_replicas 80 --num_groups 8 --num_nodes 2 \
  --num_gpus 8 --output_path "$OUT/expert_map_simulated.json"
echo "-- the map (policy balanced, the default: groups kept on their nodes) against the lower bound:"
"$EPLB" report --input "$here/token_collects_all.json" --map "$OUT/expert_map.json" \
  --num_groups 8 --num_nodes 2 --svg "$OUT/report.svg"
echo "-- DeepSeek's algorithm on the same counts, for comparison:"
"$EPLB" plan --json_folder "$here" --num_replicas 80 --num_groups 8 --num_nodes 2 --num_gpus 8 \
  --policy deepseek --output_path "$OUT/expert_map_deepseek.json"
"$EPLB" report --input "$here/token_collects_all.json" --map "$OUT/expert_map_deepseek.json" \
  --num_groups 8 --num_nodes 2 --svg "$OUT/report_deepseek.svg"
echo "pictures: $OUT/report.svg $OUT/report_deepseek.svg"

echo
echo "== Step 3: move (8 ranks, initial layout -> map, 1 MiB per expert, every byte verified)"
$MPIRUN -np 8 "$EPLB" migrate --from initial --to "$OUT/expert_map.json" --expert_bytes 1048576 \
  --verify --write_map "$OUT/expert_map_held.json"
echo "routing table the ranks now hold: $OUT/expert_map_held.json"
echo
echo "demo done: outputs in $OUT"
