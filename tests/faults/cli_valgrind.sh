#!/usr/bin/env bash
# cli_valgrind.sh SCRIPT - runs a CLI test script (tests/SCRIPT, e.g. plan/cli_plan.sh) once with every `eplb` it starts
# under `valgrind --error-exitcode=1 --leak-check=full` (issue #17). A valgrind error fails the
# command it happened in (exit 1), and, since a case may expect exit 1 anyway, every error report
# is also kept in a log per process and any non-empty log fails this test.
# Environment (set by ctest): EPLB (the program), VALGRIND, and what SCRIPT needs.
set -u
SCRIPT=${1:?usage: cli_valgrind.sh SCRIPT}
EPLB=${EPLB:?} VALGRIND=${VALGRIND:?}
HERE=$(cd "$(dirname "$0")/.." && pwd)
L=$(mktemp -d /tmp/eplb_cli_valgrind.XXXXXX)
trap 'rm -rf "$L"' EXIT
cat >"$L/eplb" <<WRAP
#!/bin/sh
exec "$VALGRIND" -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \\
  --log-file="$L/vg.%p.log" "$EPLB" "\$@"
WRAP
chmod +x "$L/eplb"
EPLB="$L/eplb" bash "$HERE/$SCRIPT"
rc=$?
runs=$(ls "$L"/vg.*.log 2>/dev/null | wc -l)
errors=$(find "$L" -name 'vg.*.log' -size +0 | wc -l)
for f in $(find "$L" -name 'vg.*.log' -size +0 | head -3); do
  echo "---- valgrind: $f"
  head -40 "$f"
done
echo "cli_valgrind $SCRIPT: $runs runs under valgrind, $errors with errors, script exit $rc"
[ $rc -eq 0 ] && [ "$runs" -gt 0 ] && [ "$errors" -eq 0 ]
