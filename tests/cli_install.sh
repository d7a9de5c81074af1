#!/usr/bin/env bash
# cli_install.sh - `cmake --install` puts headers, libraries, eplb.pc, the CMake package and the
# program in place, and a program outside the tree builds against them with pkg-config and with
# find_package(eplb); an MPI program links the shared libeplb_mpi with mpicc and eplb_mpi.pc and
# gathers under mpirun with 2 ranks. Environment (set by ctest): BUILD (the build folder).
set -eu
BUILD=${BUILD:?}
T=$(mktemp -d /tmp/eplb_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; fi; }
check test -f "$T/prefix/include/eplb.h"
check test -f "$T/prefix/include/eplb/version.h"
check test -f "$T/prefix/include/eplb_mpi.h"
check test -x "$T/prefix/bin/eplb"
pc=$(find "$T/prefix" -name eplb.pc | head -n1)
check test -n "$pc"
libdir=$(dirname "$(find "$T/prefix" -name 'libeplb.so' | head -n1)")
check test -L "$libdir/libeplb.so"
check test -f "$libdir/libeplb.a"
# the shared library carries a SONAME with the major version
check sh -c "objdump -p '$libdir/libeplb.so' | grep -q 'SONAME *libeplb.so.[0-9]'"

cat >"$T/app.c" <<'C'
#include <eplb.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  const char *text = "{\"0\": {\"0\": 3, \"1\": 1}}";
  eplb_loads *x = NULL;
  if (eplb_loads_parse(text, strlen(text), "app", 0, &x) != 0)
    return 1;
  int ok = x->num_experts == 2 && x->load[0] == 3 && eplb_version() > 0;
  eplb_loads_free(x);
  printf("%s\n", ok ? "app ok" : "app wrong");
  return ok ? 0 : 1;
}
C
export PKG_CONFIG_PATH=$(dirname "$pc")
# shellcheck disable=SC2046
check cc -std=c11 "$T/app.c" $(pkg-config --cflags --libs eplb) -o "$T/app"
check sh -c "LD_LIBRARY_PATH='$libdir' '$T/app' | grep -q 'app ok'"

mkdir -p "$T/cm"
cat >"$T/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(eplb REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE eplb::libeplb_static)
CM
check cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$T/prefix" -DCMAKE_BUILD_TYPE=Release
check cmake --build "$T/cm/build"
check sh -c "'$T/cm/build/app' | grep -q 'app ok'"
# An MPI program built with mpicc against the installed *shared* libraries (eplb_mpi.pc pulls in
# eplb.pc): libeplb_mpi.so must find the internal helpers it calls in libeplb.so, and both must
# share one error detail (a failure inside libeplb_mpi reads back through eplb_last_error).
check test -f "$(dirname "$pc")/eplb_mpi.pc"
check test -L "$libdir/libeplb_mpi.so"
cat >"$T/mpi_app.c" <<'C'
#include <eplb_mpi.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0, bad = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  eplb_collector *c = eplb_collector_create(1, 2, 1);
  const uint64_t counts[2] = {(uint64_t)rank + 1, 10};
  bad |= eplb_collector_add_counts(c, 0, counts) != 0;
  /* root out of range: the detail set inside libeplb_mpi is the one libeplb reports */
  bad |= eplb_mpi_gather(c, MPI_COMM_WORLD, size, argv[1]) != EPLB_EINVAL;
  bad |= strstr(eplb_last_error(), "gather: root") == NULL;
  bad |= eplb_mpi_gather(c, MPI_COMM_WORLD, 0, argv[1]) != 0;
  eplb_collector_free(c);
  int all = 0;
  MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0)
    printf("%s %d\n", all ? "mpi app wrong" : "mpi app ok", size);
  MPI_Finalize();
  return all;
}
C
# shellcheck disable=SC2046
check mpicc -std=c11 "$T/mpi_app.c" $(pkg-config --cflags --libs eplb_mpi) \
  -Wl,-rpath,"$libdir" -o "$T/mpi_app"
# the program needs libeplb_mpi.so and libeplb.so themselves, not static copies
check sh -c "readelf -d '$T/mpi_app' | grep -q 'NEEDED.*libeplb_mpi.so'"
check sh -c "readelf -d '$T/mpi_app' | grep -q 'NEEDED.*libeplb.so'"
mkdir -p "$T/gather"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
check sh -c "${MPIRUN:-mpirun} -np 2 --oversubscribe '$T/mpi_app' '$T/gather' | grep -q 'mpi app ok 2'"
# rank 0 recorded {1, 10}, rank 1 {2, 10}: the file holds their sums, 3 and 20
check python3 - "$T/gather/token_collects_all.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    data = json.load(f)
sys.exit(0 if data == {"0": {"0": 3, "1": 20}} else 1)
PY

# The Python package lands in the prefix's site folder of Debian's python3 and imports from
# there, outside the source and build trees, with its extension linked in (no libeplb.so needed).
if [ -n "${PYTHON:-}" ]; then
  site=$(find "$T/prefix" -type d -path '*dist-packages/eplb' | head -n1)
  check test -n "$site"
  check test -f "$site/torch.py"
  check sh -c "cd '$T' && PYTHONPATH='$(dirname "$site")' '$PYTHON' -c '
import eplb, numpy as np
assert eplb.__file__.startswith(\"$T/prefix\"), eplb.__file__
m = eplb.plan(eplb.Loads(np.array([[9, 1, 1, 5]])), num_replicas=6, num_gpus=2)
assert m.logcnt.sum() == 6 and eplb.__version__
'"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
