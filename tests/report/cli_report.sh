#!/usr/bin/env bash
# cli_report.sh - `eplb report` from the command line: the table and --json figures on a map
# written by hand (expected values worked out in the comments, checked with jq), the SVG parsed
# by xmllint, and bad inputs, each of which must exit non-zero with a one-line message and leave
# an existing SVG untouched.
# Environment (set by ctest): EPLB (the program), DATA (tests/data).
set -u
EPLB=${EPLB:?} DATA=${DATA:?}
T=$(mktemp -d /tmp/eplb_cli_report.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- inputs ----
cat >"$T/loads.json" <<'JSON'
{"3": {"0": 6, "1": 2, "2": 2, "3": 2}, "7": {"0": 1, "1": 1, "2": 1, "3": 1}}
JSON
# Layer 3: device 0 {0,1,2}, device 1 {0,3,3}: loads 7 and 5, mean 6, LB 6, one duplicate.
# Layer 7: {0,1,2} and {3,2,1}: 2 and 2.
cat >"$T/map.json" <<'JSON'
{"moe_layer_count": 2, "layer_list": [
 {"layer_id": 3, "device_count": 2, "device_list": [
   {"device_id": 0, "device_expert": [0, 1, 2]}, {"device_id": 1, "device_expert": [0, 3, 3]}]},
 {"layer_id": 7, "device_count": 2, "device_list": [
   {"device_id": 0, "device_expert": [0, 1, 2]}, {"device_id": 1, "device_expert": [3, 2, 1]}]}]}
JSON
# Old: layer 3 device 0 {1,2,3} lacks expert 0 (1 move), device 1 {0,3,2} has 0 and 3.
cat >"$T/old.json" <<'JSON'
{"moe_layer_count": 2, "layer_list": [
 {"layer_id": 3, "device_count": 2, "device_list": [
   {"device_id": 0, "device_expert": [1, 2, 3]}, {"device_id": 1, "device_expert": [0, 3, 2]}]},
 {"layer_id": 7, "device_count": 2, "device_list": [
   {"device_id": 0, "device_expert": [0, 1, 2]}, {"device_id": 1, "device_expert": [3, 2, 1]}]}]}
JSON

# ---- help ----
"$EPLB" report --help | grep -q -- '--old_map' && ok || bad "report --help"

# ---- table ----
if "$EPLB" report --input "$T/loads.json" --map "$T/map.json" --old_map "$T/old.json" \
  --num_groups 2 --num_nodes 2 >"$T/table" 2>"$T/err"; then
  ok
  # layer 3: balancedness 6/7, max/LB 7/6, imbalance 1/6, 1 duplicate, 0 missing, 1 move, off 5/12
  grep -Eq '^3 +0\.8571 +1\.1667 +0\.1667 +1 +0 +1 +0\.4167$' "$T/table" && ok || bad "table layer 3: $(cat "$T/table")"
  grep -Eq '^7 +1\.0000 +1\.0000 +0\.0000 +0 +0 +0 +0\.2500$' "$T/table" && ok || bad "table layer 7"
  grep -Eq '^overall +0\.8889 +1\.1250 +0\.1250 +1 +0 +1 +0\.3750$' "$T/table" && ok || bad "table overall"
else
  bad "report table: $(cat "$T/err")"
fi

# ---- json ----
if "$EPLB" report --input "$T/loads.json" --map "$T/map.json" --json >"$T/r.json" 2>"$T/err"; then
  ok
  jq -e '.num_gpus == 2 and .num_slots == 6 and (.layers | length) == 2' "$T/r.json" >/dev/null && ok || bad "json shape"
  jq -e '.layers[0] | .layer_id == 3 and .max_load == 7 and .lower_bound == 6 and .duplicates == 1 and .moves == null' "$T/r.json" >/dev/null && ok || bad "json layer 3"
  jq -e '(.overall.max_over_lb - 1.125 | fabs) < 1e-9 and (.overall.balancedness - 8/9 | fabs) < 1e-9' "$T/r.json" >/dev/null && ok || bad "json overall"
else
  bad "report --json: $(cat "$T/err")"
fi

# ---- svg: a plan of real counts, drawn and parsed ----
if "$EPLB" plan --input "$DATA/olmoe/olmoe_arxiv.json" --num_replicas 80 --num_gpus 8 \
  --num_groups 8 --num_nodes 2 --policy balanced --output_path "$T/olmoe.json" 2>"$T/err"; then
  ok
  if "$EPLB" report --input "$DATA/olmoe/olmoe_c4.json" --map "$T/olmoe.json" \
    --num_groups 8 --num_nodes 2 --svg "$T/r.svg" >"$T/table" 2>"$T/err"; then
    ok
    xmllint --noout "$T/r.svg" 2>"$T/xerr" && ok || bad "svg is not XML: $(head -3 "$T/xerr")"
    # Per layer two bar sets of 8 devices (initial and map) and a heat map of 3 x 64 cells.
    [ "$(grep -c 'class="before"' "$T/r.svg")" -eq $((3 * 8 + 1)) ] && ok || bad "svg initial bars"
    [ "$(grep -c 'class="after"' "$T/r.svg")" -eq $((3 * 8 + 1)) ] && ok || bad "svg map bars"
    [ "$(grep -c '<title>layer [0-9]* expert' "$T/r.svg")" -eq $((3 * 64)) ] && ok || bad "svg heat map"
    grep -q 'lower bound' "$T/r.svg" && ok || bad "svg legend"
  else
    bad "report --svg: $(cat "$T/err")"
  fi
else
  bad "plan balanced: $(cat "$T/err")"
fi

# ---- bad inputs: exit status, one-line message, SVG untouched ----
echo "keep" >"$T/keep.svg"
# expect CODE NEEDLE ARGS...
expect() {
  local code=$1 needle=$2
  shift 2
  "$EPLB" report "$@" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then bad "exit $rc (want $code) for: $* :: $(cat "$T/err")"; return; fi
  grep -q -- "$needle" "$T/err" && ok || bad "message lacks '$needle': $(cat "$T/err")"
  [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "message is not one line: $(cat "$T/err")"
  [ "$(cat "$T/keep.svg")" = keep ] && ok || bad "svg touched by: $*"
}
echo '{"3": {"0": 1}}' >"$T/short.json"
echo '{"3": ' >"$T/broken.json"
expect 2 "required" --map "$T/map.json" --svg "$T/keep.svg"
expect 2 "unknown option" --input "$T/loads.json" --map "$T/map.json" --bogus
expect 2 "num_groups" --input "$T/loads.json" --map "$T/map.json" --num_groups 0
expect 1 "missing.json" --input "$T/missing.json" --map "$T/map.json" --svg "$T/keep.svg"
expect 1 "broken.json" --input "$T/broken.json" --map "$T/map.json" --svg "$T/keep.svg"
expect 1 "layer 7" --input "$T/short.json" --map "$T/map.json" --svg "$T/keep.svg"
expect 1 "num_groups" --input "$T/loads.json" --map "$T/map.json" --num_groups 3 --svg "$T/keep.svg"
expect 1 "loads.json" --input "$T/loads.json" --map "$T/loads.json" --svg "$T/keep.svg"

# ---- a map that lacks experts the loads have ----
# Loads: 8 experts of load 1 each; the map serves experts 0..5 only (two devices of 3 slots):
# the figures are over the served load 6, so every device carries 3, the mean is 3,
# balancedness 1 and max/LB 1, and 2 experts are missing.
echo '{"0": {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1}}' >"$T/l8.json"
cat >"$T/m6.json" <<'JSON'
{"moe_layer_count": 1, "layer_list": [{"layer_id": 0, "device_count": 2, "device_list": [
  {"device_id": 0, "device_expert": [0, 1, 2]}, {"device_id": 1, "device_expert": [3, 4, 5]}]}]}
JSON
"$EPLB" report --input "$T/l8.json" --map "$T/m6.json" --json >"$T/m6out.json" 2>"$T/err" &&
  jq -e '.layers[0] | .missing == 2 and .total_load == 6 and .mean_load == 3 and .max_load == 3
         and .balancedness == 1 and .max_over_lb == 1' "$T/m6out.json" >/dev/null && ok ||
  bad "map lacking experts: $(cat "$T/m6out.json" "$T/err")"

echo "cli_report: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
