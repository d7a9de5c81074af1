#!/usr/bin/env bash
# cli_report_replan.sh - `eplb plan --objective` and `--old_map/--max_moves`, judged with
# `eplb report` (moves against the old map, checked with jq) on the real OLMoE counts: nothing
# moves when loads are unchanged, a budget is respected, matching moves no more than a plain plan,
# and bad combinations are refused with the output left untouched.
# Environment (set by ctest): EPLB (the program), DATA (tests/data).
set -u
EPLB=${EPLB:?} DATA=${DATA:?}
T=$(mktemp -d /tmp/eplb_cli_replan.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
D="$DATA/olmoe"
shape=(--num_replicas 80 --num_gpus 8 --num_groups 8 --num_nodes 2 --policy balanced)
# moves OLD MAP LOADS: the overall moves eplb report counts.
moves() { "$EPLB" report --input "$3" --map "$2" --old_map "$1" --json | jq -r '.overall.moves'; }

"$EPLB" plan --input "$D/olmoe_arxiv.json" "${shape[@]}" --output_path "$T/old.json" 2>/dev/null && ok || bad "plan old"

# ---- unchanged loads: nothing moves, with budget 0 and without budget ----
"$EPLB" plan --input "$D/olmoe_arxiv.json" "${shape[@]}" --old_map "$T/old.json" --max_moves 0 \
  --output_path "$T/same0.json" 2>"$T/err" && ok || bad "replan budget 0: $(cat "$T/err")"
[ "$(moves "$T/old.json" "$T/same0.json" "$D/olmoe_arxiv.json")" = 0 ] && ok || bad "budget 0 moved"
grep -q '^eplb plan: 0 expert weights move' "$T/err" && ok || bad "moves line: $(cat "$T/err")"
"$EPLB" plan --input "$D/olmoe_arxiv.json" "${shape[@]}" --old_map "$T/old.json" \
  --output_path "$T/same.json" 2>/dev/null && ok || bad "replan unlimited"
[ "$(moves "$T/old.json" "$T/same.json" "$D/olmoe_arxiv.json")" = 0 ] && ok || bad "unchanged loads moved"

# ---- a new workload: matched plan moves no more than a plain one; budgets hold ----
"$EPLB" plan --input "$D/olmoe_c4.json" "${shape[@]}" --output_path "$T/plain.json" 2>/dev/null && ok || bad "plain plan"
"$EPLB" plan --input "$D/olmoe_c4.json" "${shape[@]}" --old_map "$T/old.json" \
  --output_path "$T/re.json" 2>"$T/err" && ok || bad "replan: $(cat "$T/err")"
plain=$(moves "$T/old.json" "$T/plain.json" "$D/olmoe_c4.json")
re=$(moves "$T/old.json" "$T/re.json" "$D/olmoe_c4.json")
[ "$re" -le "$plain" ] && ok || bad "matched $re > plain $plain"
grep -q "^eplb plan: $re expert weights move" "$T/err" && ok || bad "printed moves differ from report's $re"
# Same balance as the plain plan: max/LB per layer equal.
a=$("$EPLB" report --input "$D/olmoe_c4.json" --map "$T/plain.json" --json | jq -c '[.layers[].max_load]')
b=$("$EPLB" report --input "$D/olmoe_c4.json" --map "$T/re.json" --json | jq -c '[.layers[].max_load]')
[ "$a" = "$b" ] && ok || bad "matching changed balance: $a vs $b"
budget=$((re / 2))
"$EPLB" plan --input "$D/olmoe_c4.json" "${shape[@]}" --old_map "$T/old.json" --max_moves "$budget" \
  --output_path "$T/half.json" 2>/dev/null && ok || bad "replan with budget"
[ "$(moves "$T/old.json" "$T/half.json" "$D/olmoe_c4.json")" -le "$budget" ] && ok || bad "budget exceeded"

# ---- objectives over several inputs ----
for o in sum mean max; do
  if "$EPLB" plan --input "$D/olmoe_arxiv.json" --input "$D/olmoe_c4.json" --input "$D/olmoe_github.json" \
    "${shape[@]}" --objective "$o" --output_path "$T/obj_$o.json" 2>"$T/err"; then
    ok
    jq -e '[.layer_list[].device_list[] | (.device_expert | unique | length) == (.device_expert | length)] | all' \
      "$T/obj_$o.json" >/dev/null && ok || bad "objective $o: duplicate"
    jq -e '[.layer_list[] | [.device_list[].device_expert[]] | unique | length == 64] | all' \
      "$T/obj_$o.json" >/dev/null && ok || bad "objective $o: every expert placed"
  else
    bad "objective $o: $(cat "$T/err")"
  fi
done

# ---- bad combinations: exit status, one line, output untouched ----
echo keep >"$T/keep.json"
expect() {
  local code=$1 needle=$2
  shift 2
  "$EPLB" plan "$@" --output_path "$T/keep.json" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then bad "exit $rc (want $code) for: $* :: $(cat "$T/err")"; return; fi
  grep -q -- "$needle" "$T/err" && ok || bad "message lacks '$needle': $(cat "$T/err")"
  [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "not one line: $(cat "$T/err")"
  [ "$(cat "$T/keep.json")" = keep ] && ok || bad "output touched by: $*"
}
expect 2 "objective" --input "$D/olmoe_c4.json" "${shape[@]}" --objective median
expect 2 "max_moves needs" --input "$D/olmoe_c4.json" "${shape[@]}" --max_moves 3
expect 2 "max_moves" --input "$D/olmoe_c4.json" "${shape[@]}" --old_map "$T/old.json" --max_moves -1
expect 2 "json_folder" --json_folder "$D" "${shape[@]}" --objective max
expect 1 "old map" --input "$D/olmoe_c4.json" --num_replicas 96 --num_gpus 8 --policy balanced --old_map "$T/old.json"
expect 1 "missing.json" --input "$D/olmoe_c4.json" "${shape[@]}" --old_map "$T/missing.json"

echo "cli_report_replan: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
