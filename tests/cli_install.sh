#!/usr/bin/env bash
# cli_install.sh - `cmake --install` puts headers, libraries, eplb.pc, the CMake package and the
# program in place, and a program outside the tree builds against them with pkg-config and with
# find_package(eplb). Environment (set by ctest): BUILD (the build folder).
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
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
