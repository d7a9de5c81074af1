#!/usr/bin/env bash
# run_all.sh - runs every benchmark of a build: the <build>/bench/bench_* programs (bench_mpi_* under
# mpirun with 2 ranks; a program with a script of its name runs through the script) and the
# shell benchmarks bench/*/bench_*.sh.
#   usage: bench/run_all.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../build}" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for prog in "$B"/bench/bench_*; do
  [ -x "$prog" ] || continue
  ls "$here"/*/"$(basename "$prog").sh" >/dev/null 2>&1 && continue # its script runs it below
  echo "==== $(basename "$prog")"
  case $(basename "$prog") in
    bench_mpi_*) mpirun --oversubscribe -np 2 "$prog" ;;
    *) "$prog" ;;
  esac
done
for script in "$here"/*/bench_*.sh; do
  [ -f "$script" ] || continue
  echo "==== $(basename "$script")"
  bash "$script" "$B"
done
