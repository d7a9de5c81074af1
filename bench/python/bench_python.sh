#!/usr/bin/env bash
# bench_python.sh - runs bench_python.py on a build's Python package (Debian's python3).
#   usage: bench/python/bench_python.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
if [ ! -d "$B/python/eplb" ]; then
  echo "bench_python: no Python package in $B (configure with python3-dev installed)" >&2
  exit 1
fi
PYTHONPATH="$B/python" /usr/bin/python3 "$here/bench_python.py"
