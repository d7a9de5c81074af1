#!/usr/bin/env bash
# bench_mpi_migrate.sh - the step 3 benchmark at 2 and 4 ranks (with the machine's load average,
# which the in-place figures are sensitive to: a rank sharing its core waits), then the CLI
# moving 1 MiB experts from the initial layout to a deepseek plan of examples/ at 8 ranks, out of
# place and in place, with and without --relabel.
#   usage: bench/move/bench_mpi_migrate.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for np in 2 4; do
  echo "== $np ranks on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$(nproc)" -ge "$np" ] || echo "($np ranks on $(nproc) cores are oversubscribed: their GB/s measure the CPU share)"
  if [ "$np" = 2 ]; then
    mpirun --oversubscribe -np "$np" "$B/bench/bench_mpi_migrate"
  else # the copies part is the same at any rank count
    mpirun --oversubscribe -np "$np" "$B/bench/bench_mpi_migrate" | sed '/^$/,$d'
  fi
done
T=$(mktemp -d /tmp/eplb_bench_migrate.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$B/eplb" plan --input "$here/../../examples/token_collects_all.json" --num_replicas 64 \
  --num_groups 8 --num_nodes 2 --num_gpus 8 --output_path "$T/map.json" 2>/dev/null
echo
echo "== eplb migrate, 8 ranks, initial -> deepseek plan of examples/ (3 x 64 -> 64 slots), 1 MiB"
for extra in "" "--relabel" "--in_place" "--in_place --relabel"; do
  # shellcheck disable=SC2086
  mpirun --oversubscribe -np 8 "$B/eplb" migrate --from initial --to "$T/map.json" \
    --expert_bytes 1048576 --gpus_per_node 4 --verify $extra | sed "s/^/[${extra:-default}] /"
done
