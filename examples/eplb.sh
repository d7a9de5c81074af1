#!/usr/bin/env bash
# eplb.sh - the seed's map-generation script, with eplb in place of eplb_generate_map_ds.py.
# The flags are the upstream tool's; the defaults match examples/token_collects_all.json
# (OLMoE, 64 experts): 80 slots (16 redundant) on 8 devices in 2 nodes, 8 expert groups.
#   usage: examples/eplb.sh [EPLB_BINARY] [JSON_FOLDER] [OUTPUT_PATH]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
EPLB=${1:-$here/../build/eplb}
JSON_FOLDER=${2:-$here}
OUTPUT_PATH=${3:-./expert_map.json}
NUM_REPLICAS=${NUM_REPLICAS:-80}
NUM_GROUPS=${NUM_GROUPS:-8}
NUM_NODES=${NUM_NODES:-2}
NUM_GPUS=${NUM_GPUS:-8}

"$EPLB" plan \
  --json_folder "$JSON_FOLDER" \
  --num_replicas "$NUM_REPLICAS" \
  --num_groups "$NUM_GROUPS" \
  --num_nodes "$NUM_NODES" \
  --num_gpus "$NUM_GPUS" \
  --output_path "$OUTPUT_PATH"
