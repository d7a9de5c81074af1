#!/usr/bin/env bash
# run_fuzz.sh BUILD SECONDS - runs every libFuzzer target of BUILD (configured with
# -DEPLB_FUZZ=ON) for SECONDS each, from a copy of the seed corpus tests/fuzz/corpus/<target>
# (the inputs it adds stay in BUILD/fuzz/<target>/corpus, the repository's seeds are not
# touched). A crash input is left in BUILD/fuzz/<target>/crash-*: to keep it as a regression
# test, fix the bug and copy it to tests/fuzz/crashes/<target>/. Prints one line per target with
# its executions; exits 1 when any target found something.
set -u
BUILD=${1:?usage: run_fuzz.sh BUILD SECONDS} SECONDS_EACH=${2:?usage: run_fuzz.sh BUILD SECONDS}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TARGETS="loads map config plan"
status=0
summary=""
for t in $TARGETS; do
  work=$BUILD/fuzz/$t
  mkdir -p "$work/corpus"
  cp -n "$SRC/tests/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null
  # Dictionary-free, one process; -max_len fits the corpus (a few KB); RSS capped below the box.
  "$BUILD/tests/fuzz/fuzz_$t" "$work/corpus" -max_total_time="$SECONDS_EACH" -max_len=4096 \
    -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix="$work/" \
    >"$work/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  crashes=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  line="fuzz_$t: ${runs:-?} executions in ${SECONDS_EACH}s, corpus $(ls "$work/corpus" | wc -l) inputs, $crashes findings (exit $rc)"
  echo "$line"
  summary="$summary$line"$'\n'
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    grep -m3 -E 'ERROR|invariant failed|runtime error' "$work/log" | sed 's/^/  /'
  fi
done
printf '%s' "$summary" >"$BUILD/fuzz/summary.txt"
exit $status
