#!/usr/bin/env bash
# cli_crash.sh - crash safety of the atomic write: `eplb merge` replacing a large
# token_collects_all.json is killed with SIGKILL at random moments, again and again, until at
# least MIN_WRITE_KILLS kills have landed while the new file was being written (its temp file
# exists after the kill). After every kill the target must be byte for byte either the old
# content or the new content (both references were parsed with jq once), never a mix or a stub.
# Temp files (<target>.tmp.XXXXXX) a kill leaves behind are expected: they are counted and
# removed here, the target itself is never partial.
# Environment (set by ctest): EPLB (the program).
set -u
EPLB=${EPLB:?}
MIN_WRITE_KILLS=${MIN_WRITE_KILLS:-50}
MAX_ROUNDS=${MAX_ROUNDS:-600}
LAYERS=64 EXPERTS=4096 # about 2.8 MB written per replacement
T=$(mktemp -d /tmp/eplb_cli_crash.XXXXXX)
trap 'rm -rf "$T"' EXIT

# ---- two small inputs whose merged forms are large (every expert is written, zeros too), so
# that a run is mostly writing; and their merged forms, the references ----
for seed in 1 2; do
  awk -v L=$LAYERS -v s=$seed 'BEGIN { printf "{";
    for (l = 0; l < L; l++) printf "%s\"%d\": {\"%d\": %d}", (l ? ", " : ""), l, l * s, 1000 * s + l;
    print "}" }' >"$T/in$seed.json"
  "$EPLB" merge "$T/in$seed.json" --num_experts $EXPERTS -o "$T/ref$seed.json" 2>/dev/null ||
    { echo "FAIL: reference merge"; exit 1; }
  jq -e "length == $LAYERS and ([.[] | length == $EXPERTS] | all)" "$T/ref$seed.json" >/dev/null ||
    { echo "FAIL: reference $seed does not parse as $LAYERS x $EXPERTS"; exit 1; }
done
cmp -s "$T/ref1.json" "$T/ref2.json" && { echo "FAIL: references are equal"; exit 1; }
cp "$T/ref1.json" "$T/target.json"

# ---- how long one replacement takes, to spread the kills over it ----
start=$(date +%s%N)
"$EPLB" merge "$T/in2.json" --num_experts $EXPERTS -o "$T/target.json" 2>/dev/null
"$EPLB" merge "$T/in1.json" --num_experts $EXPERTS -o "$T/target.json" 2>/dev/null
run_us=$((($(date +%s%N) - start) / 2000))
echo "one replacement takes ${run_us} us"

# ---- kill, check, repeat ----
rounds=0 write_kills=0 other_kills=0 finished=0 old_seen=0 new_seen=0 fail=0
current=1 # the reference the target holds now
while [ $write_kills -lt "$MIN_WRITE_KILLS" ] && [ $rounds -lt "$MAX_ROUNDS" ]; do
  rounds=$((rounds + 1))
  next=$((3 - current))
  "$EPLB" merge "$T/in$next.json" --num_experts $EXPERTS -o "$T/target.json" 2>/dev/null &
  pid=$!
  delay_us=$((RANDOM * (run_us + run_us / 4) / 32767))
  sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
  if kill -KILL $pid 2>/dev/null; then killed=1; else killed=0; fi
  wait $pid 2>/dev/null
  temps=$(find "$T" -maxdepth 1 -name 'target.json.tmp.*' | wc -l)
  if [ "$killed" -eq 1 ] && [ "$temps" -gt 0 ]; then
    write_kills=$((write_kills + 1))
  elif [ "$killed" -eq 1 ]; then
    other_kills=$((other_kills + 1))
  else
    finished=$((finished + 1))
  fi
  rm -f "$T"/target.json.tmp.*
  if cmp -s "$T/target.json" "$T/ref$current.json"; then
    old_seen=$((old_seen + 1))
  elif cmp -s "$T/target.json" "$T/ref$next.json"; then
    new_seen=$((new_seen + 1))
    current=$next
  else
    echo "FAIL: round $rounds: target is neither the old nor the new file ($(wc -c <"$T/target.json") bytes)"
    fail=$((fail + 1))
    cp "$T/ref$current.json" "$T/target.json"
  fi
done

echo "rounds $rounds: killed while writing $write_kills, killed before writing $other_kills," \
  "finished before the kill $finished; target old $old_seen times, new $new_seen times"
[ $write_kills -ge "$MIN_WRITE_KILLS" ] || { echo "FAIL: only $write_kills kills during a write"; fail=$((fail + 1)); }
# A replacement that is not killed must land (under load every kill may fall inside a write, so
# the loop alone need not show one).
next=$((3 - current))
"$EPLB" merge "$T/in$next.json" --num_experts $EXPERTS -o "$T/target.json" 2>/dev/null &&
  cmp -s "$T/target.json" "$T/ref$next.json" ||
  { echo "FAIL: an uninterrupted merge did not replace the target"; fail=$((fail + 1)); }
jq -e "length == $LAYERS" "$T/target.json" >/dev/null || { echo "FAIL: final target does not parse"; fail=$((fail + 1)); }
[ $fail -eq 0 ] && echo "PASS" || exit 1
