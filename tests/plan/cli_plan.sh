#!/usr/bin/env bash
# cli_plan.sh - `eplb plan` from the command line: the happy paths (checked with jq, not with
# eplb's own reader) and a catalogue of bad inputs, each of which must exit non-zero with a
# one-line message naming the problem and leave an existing output file untouched.
# Environment (set by ctest): EPLB (the program), DATA (tests/data).
set -u
EPLB=${EPLB:?} DATA=${DATA:?}
T=$(mktemp -d /tmp/eplb_cli_plan.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- inputs ----
cat >"$T/loads.json" <<'EOF'
{"0": {"0": 100, "1": 10, "2": 10, "3": 10, "4": 50, "5": 5, "6": 5, "7": 5},
 "1": {"0": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 800}}
EOF
mkdir -p "$T/ranks"
cat >"$T/ranks/rank0.json" <<'EOF'
{"0": {"0": 60, "1": 4, "2": 10, "3": 1, "4": 20, "5": 5, "6": 2, "7": 5},
 "1": {"0": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 300}}
EOF
cat >"$T/ranks/rank1.json" <<'EOF'
{"0": {"0": 40, "1": 6, "3": 9, "4": 30, "6": 3},
 "1": {"7": 500}}
EOF
echo "ignored" >"$T/ranks/README.txt"
base=(--num_replicas 12 --num_groups 2 --num_nodes 1 --num_gpus 4)

# ---- help and version ----
"$EPLB" --version | grep -Eq '^eplb [0-9]+\.[0-9]+\.[0-9]+$' && ok || bad "--version"
"$EPLB" --help | grep -q 'plan' && ok || bad "--help lists plan"
"$EPLB" plan --help | grep -q -- '--num_replicas' && ok || bad "plan --help"

# output that cannot be written is a failure (exit 1, a message), not a silent success
if [ -w /dev/full ]; then
  "$EPLB" --help >/dev/full 2>"$T/err"
  [ $? -eq 1 ] && grep -q 'cannot write the output' "$T/err" && ok || bad "--help to a full disk"
  "$EPLB" plan --help >/dev/full 2>/dev/null
  [ $? -eq 1 ] && ok || bad "plan --help to a full disk"
fi

# ---- a plan, checked with jq ----
if "$EPLB" plan --input "$T/loads.json" "${base[@]}" --output_path "$T/map.json" 2>"$T/err"; then
  ok
  jq -e '.moe_layer_count == 2 and (.layer_list | length) == 2' "$T/map.json" >/dev/null && ok || bad "layer count"
  jq -e '[.layer_list[] | .device_count == 4 and (.device_list | length) == 4] | all' "$T/map.json" >/dev/null && ok || bad "device count"
  jq -e '[.layer_list[].device_list[] | (.device_expert | length) == 3] | all' "$T/map.json" >/dev/null && ok || bad "3 slots per device"
  jq -e '[.layer_list[].device_list[] | (.device_expert | unique | length) == (.device_expert | length)] | all' "$T/map.json" >/dev/null && ok || bad "no duplicate on a device"
  jq -e '[.layer_list[] | [.device_list[].device_expert[]] | unique == [0,1,2,3,4,5,6,7]] | all' "$T/map.json" >/dev/null && ok || bad "every expert placed"
  jq -e '[.layer_list[].layer_id] == [0, 1]' "$T/map.json" >/dev/null && ok || bad "layer ids"
  grep -q 'balancedness mean' "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "one summary line: $(cat "$T/err")"
else
  bad "plan failed: $(cat "$T/err")"
fi

# kebab-case aliases give the same map
"$EPLB" plan --input "$T/loads.json" --num-replicas 12 --num-groups 2 --num-nodes 1 --num-gpus 4 \
  --output-path "$T/kebab.json" 2>/dev/null && cmp -s "$T/map.json" "$T/kebab.json" && ok || bad "kebab aliases"

# --format full: phy2log is the devices' lists concatenated; logcnt counts it
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --format full --output_path "$T/full.json" 2>/dev/null &&
  jq -e '[.layer_list[] | .phy2log == [.device_list[].device_expert[]]] | all' "$T/full.json" >/dev/null && ok || bad "full: phy2log"
jq -e '[.layer_list[] | . as $l | [range(0; 8) as $e | ([$l.phy2log[] | select(. == $e)] | length) == $l.logcnt[$e]] | all] | all' \
  "$T/full.json" >/dev/null && ok || bad "full: logcnt"

# the hot expert 7 of layer 1 gets replicas, as many as devices at most
jq -e '.layer_list[1].logcnt[7] >= 2 and .layer_list[1].logcnt[7] <= 4' "$T/full.json" >/dev/null && ok || bad "hot expert replicated"

# a folder of per-rank files is summed: same map as the summed single file
"$EPLB" plan --json_folder "$T/ranks" "${base[@]}" --output_path "$T/folder.json" 2>/dev/null &&
  cmp -s "$T/map.json" "$T/folder.json" && ok || bad "folder sum"
# so is a repeated --input
"$EPLB" plan --input "$T/ranks/rank0.json" --input "$T/ranks/rank1.json" "${base[@]}" \
  --output_path "$T/two.json" 2>/dev/null && cmp -s "$T/map.json" "$T/two.json" && ok || bad "two inputs"

# SGLang's format: the same counts as rows
jq -c '{logical_count: [.["0"], .["1"]] | map([to_entries[] | .value])}' "$T/loads.json" >"$T/sglang.json"
"$EPLB" plan --input "$T/sglang.json" "${base[@]}" --output_path "$T/sg.json" 2>/dev/null &&
  cmp -s "$T/map.json" "$T/sg.json" && ok || bad "sglang format"

# sparse, unordered layer keys: output layer_id is the input key, ascending
echo '{"9": {"0": 1, "1": 2, "2": 3, "3": 4}, "2": {"0": 4, "1": 3, "2": 2, "3": 1}}' >"$T/sparse.json"
"$EPLB" plan --input "$T/sparse.json" --num_replicas 4 --num_gpus 2 --output_path "$T/sp.json" 2>/dev/null &&
  jq -e '[.layer_list[].layer_id] == [2, 9]' "$T/sp.json" >/dev/null && ok || bad "sparse layer ids"

# --num_experts adds experts with no tokens; they still get a slot
"$EPLB" plan --input "$T/sparse.json" --num_experts 6 --num_replicas 6 --num_gpus 2 --output_path "$T/e6.json" 2>/dev/null &&
  jq -e '[.layer_list[] | [.device_list[].device_expert[]] | sort == [0,1,2,3,4,5]] | all' "$T/e6.json" >/dev/null && ok || bad "num_experts"

# the default policy is balanced (the summary line says which policy and locality ran);
# --allow-duplicates alone selects deepseek, whose map equals --policy deepseek --allow-duplicates
grep -q 'policy balanced none;' "$T/err" && ok || bad "default policy: $(cat "$T/err")"
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --num_nodes 2 --output_path "$T/strict.json" 2>"$T/err2" &&
  grep -q 'policy balanced strict;' "$T/err2" && ok || bad "default locality with 2 nodes: $(cat "$T/err2")"
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --allow-duplicates --output_path "$T/dup1.json" 2>"$T/err2" &&
  grep -q 'policy deepseek hierarchical (duplicates allowed);' "$T/err2" &&
  "$EPLB" plan --input "$T/loads.json" "${base[@]}" --policy deepseek --allow-duplicates --output_path "$T/dup2.json" 2>/dev/null &&
  cmp -s "$T/dup1.json" "$T/dup2.json" && ok || bad "--allow-duplicates selects deepseek: $(cat "$T/err2")"

# the balanced policy: valid, no duplicate, and the same map on every run (no time budget)
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --policy balanced --output_path "$T/bal1.json" 2>/dev/null &&
  "$EPLB" plan --input "$T/loads.json" "${base[@]}" --policy balanced --output_path "$T/bal2.json" 2>/dev/null &&
  cmp -s "$T/bal1.json" "$T/bal2.json" &&
  jq -e '[.layer_list[].device_list[] | (.device_expert | unique | length) == 3] | all' "$T/bal1.json" >/dev/null &&
  ok || bad "balanced: deterministic and duplicate-free"

# an existing output is replaced, and no temp file is left behind
echo old >"$T/replace.json"
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --output_path "$T/replace.json" 2>/dev/null &&
  cmp -s "$T/map.json" "$T/replace.json" && ok || bad "replace output"
ls "$T" | grep -q '\.tmp\.' && bad "temp file left behind" || ok

# ---- bad inputs: exit status, message, output untouched ----
printf '{"0": {"0": 1, "1": 2}' >"$T/truncated.json"
: >"$T/empty.json"
echo '{"0": {"0": -5, "1": 2}}' >"$T/negative.json"
echo '{"zero": {"0": 5}}' >"$T/badlayer.json"
echo '{"0": {"one": 5}}' >"$T/badexpert.json"
echo '{"0": {"0": 5, "0": 6}}' >"$T/dupkey.json"
echo '{"0": {"0": "5"}}' >"$T/string.json"
echo '{"0": {"0": 1.5e999}}' >"$T/inf.json"
echo '[[1, 2], [3, 4]]' >"$T/array.json"
mkdir -p "$T/nojson" "$T/overflow"
echo '{"0": {"0": 9223372036854775807, "1": 1}}' >"$T/overflow/a.json"
echo '{"0": {"0": 1, "1": 1}}' >"$T/overflow/b.json"

# expect CODE NEEDLE ARGS...: exit status CODE, NEEDLE on stderr (one line), output untouched
expect() {
  local code=$1 needle=$2
  shift 2
  echo "sentinel" >"$T/out.json"
  "$EPLB" plan "$@" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then bad "exit $rc (want $code) for: $* :: $(cat "$T/err")"; return; fi
  if ! grep -qF -- "$needle" "$T/err"; then bad "message lacks '$needle' for: $* :: $(cat "$T/err")"; return; fi
  if [ "$(grep -c . "$T/err")" -lt 1 ]; then bad "no message for: $*"; return; fi
  if [ "$(cat "$T/out.json")" != "sentinel" ]; then bad "output touched for: $*"; return; fi
  if ls "$T" | grep -q '\.tmp\.'; then bad "temp file left for: $*"; return; fi
  ok
}
O=(--output_path "$T/out.json")
expect 2 "give exactly one of" "${base[@]}" "${O[@]}"
expect 2 "give exactly one of" --input "$T/loads.json" --json_folder "$T/ranks" "${base[@]}" "${O[@]}"
expect 2 "--num_replicas is required" --input "$T/loads.json" --num_gpus 4 "${O[@]}"
expect 2 "--num_gpus is required" --input "$T/loads.json" --num_replicas 12 "${O[@]}"
expect 2 "--output_path is required" --input "$T/loads.json" "${base[@]}"
expect 2 "--num_replicas: 'abc' is not an integer" --input "$T/loads.json" --num_replicas abc --num_gpus 4 "${O[@]}"
expect 2 "--num_gpus: '0' is not an integer" --input "$T/loads.json" --num_replicas 12 --num_gpus 0 "${O[@]}"
expect 2 "--num_nodes: '-2'" --input "$T/loads.json" --num_replicas 12 --num_gpus 4 --num_nodes -2 "${O[@]}"
expect 2 "unknown option '--frobnicate'" --input "$T/loads.json" "${base[@]}" --frobnicate "${O[@]}"
expect 2 "--policy: 'magic'" --input "$T/loads.json" "${base[@]}" --policy magic "${O[@]}"
expect 2 "--format: 'xml'" --input "$T/loads.json" "${base[@]}" --format xml "${O[@]}"
expect 2 "needs a value" --input "$T/loads.json" "${base[@]}" "${O[@]}" --num_experts
expect 2 "unexpected argument 'stray'" --input "$T/loads.json" "${base[@]}" "${O[@]}" stray
expect 1 "absent.json: cannot open" --input "$T/absent.json" "${base[@]}" "${O[@]}"
expect 1 "truncated.json:1:" --input "$T/truncated.json" "${base[@]}" "${O[@]}"
expect 1 "empty.json: file is empty" --input "$T/empty.json" "${base[@]}" "${O[@]}"
expect 1 "negative.json: layer \"0\": expert \"0\": count -5 is negative" --input "$T/negative.json" "${base[@]}" "${O[@]}"
expect 1 "badlayer.json: layer \"zero\"" --input "$T/badlayer.json" "${base[@]}" "${O[@]}"
expect 1 "badexpert.json: layer \"0\": expert \"one\"" --input "$T/badexpert.json" "${base[@]}" "${O[@]}"
expect 1 "duplicate object key" --input "$T/dupkey.json" "${base[@]}" "${O[@]}"
expect 1 "string.json: layer \"0\": expert \"0\": count is a string" --input "$T/string.json" "${base[@]}" "${O[@]}"
expect 1 "inf.json:1:" --input "$T/inf.json" "${base[@]}" "${O[@]}"
expect 1 "array.json: expected a JSON object" --input "$T/array.json" "${base[@]}" "${O[@]}"
expect 1 "nojson: folder holds no .json file" --json_folder "$T/nojson" "${base[@]}" "${O[@]}"
expect 1 "cannot open folder" --json_folder "$T/missing_dir" "${base[@]}" "${O[@]}"
expect 1 "overflows" --json_folder "$T/overflow" "${base[@]}" "${O[@]}"
expect 1 "expert \"4\": expert id 4 is not below --num_experts 4" --input "$T/loads.json" --num_experts 4 "${base[@]}" "${O[@]}"
expect 1 "num_replicas 14 is not a multiple of num_gpus 4" --input "$T/loads.json" --num_replicas 14 --num_gpus 4 "${O[@]}"
expect 1 "num_gpus 4 is not a multiple of num_nodes 3" --input "$T/loads.json" --num_replicas 12 --num_gpus 4 --num_nodes 3 --num_groups 3 "${O[@]}"
expect 1 "num_replicas 4 is less than the 8 experts" --input "$T/loads.json" --num_replicas 4 --num_gpus 4 "${O[@]}"
expect 1 "num_groups" --input "$T/loads.json" --num_replicas 12 --num_gpus 4 --num_groups 3 --num_nodes 1 --policy deepseek "${O[@]}"
expect 2 "--allow-duplicates reproduces DeepSeek's output" --input "$T/loads.json" "${base[@]}" --policy balanced --allow-duplicates "${O[@]}"

# an output folder that does not exist: error, nothing created
"$EPLB" plan --input "$T/loads.json" "${base[@]}" --output_path "$T/no/such/dir/map.json" 2>"$T/err"
[ $? -eq 1 ] && grep -q 'cannot create temp file' "$T/err" && [ ! -e "$T/no" ] && ok || bad "missing output folder: $(cat "$T/err")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
