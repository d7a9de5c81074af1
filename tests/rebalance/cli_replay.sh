#!/usr/bin/env bash
# cli_replay.sh - `eplb replay` on the drifting example series and on the real OLMoE counts:
# online re-balancing beats the static plan and the oracle beats both, a move budget and a
# threshold of 1e9 hold, --json has the documented schema (jq), --svg is well-formed (xmllint),
# a folder replays like the same windows in a list, and bad inputs fail with one line naming
# the file and field.
# Environment (set by ctest): EPLB (the program), SRC (the source tree), DATA (tests/data).
set -u
EPLB=${EPLB:?} SRC=${SRC:?} DATA=${DATA:?}
T=$(mktemp -d /tmp/eplb_cli_replay.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
S="$SRC/examples/drift/series.json"
shape=(--num_replicas 80 --num_gpus 8)
# fig JSON FILTER: a figure of a --json output.
fig() { jq -r "$2" "$1"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# ---- the drifting series: online <= static, oracle <= online ----
"$EPLB" replay --input "$S" "${shape[@]}" --json >"$T/d.json" 2>"$T/err" && ok || bad "replay: $(cat "$T/err")"
jq -e '(.static.max_over_mean | type) == "number" and (.online.max_over_mean | type) == "number"
       and (.online.copies_moved | type) == "number" and (.oracle.max_over_mean | type) == "number"
       and (.online.bytes_moved == .online.copies_moved * .expert_bytes) and .num_windows == 32' \
  "$T/d.json" >/dev/null && ok || bad "json schema: $(cat "$T/d.json")"
st=$(fig "$T/d.json" .static.max_over_mean) on=$(fig "$T/d.json" .online.max_over_mean)
or=$(fig "$T/d.json" .oracle.max_over_mean)
le "$on" "$st" && ok || bad "online $on > static $st"
le "$or" "$on" && ok || bad "oracle $or > online $on"
le 1 "$or" && ok || bad "oracle $or below 1"
# A clear gain on a drifting series: online at least 0.2 below static.
le "$on" "$(awk -v s="$st" 'BEGIN { print s - 0.2 }')" && ok || bad "online $on not 0.2 below static $st"

# ---- a budget per re-plan, a threshold nothing clears ----
"$EPLB" replay --input "$S" "${shape[@]}" --max_moves 8 --json >"$T/b.json" 2>/dev/null && ok || bad "budget run"
[ "$(fig "$T/b.json" '.online.copies_moved <= 8 * .online.replans')" = true ] && ok || bad "budget exceeded: $(cat "$T/b.json")"
le "$(fig "$T/b.json" .online.max_over_mean)" "$st" && ok || bad "budgeted online above static"
"$EPLB" replay --input "$S" "${shape[@]}" --min_gain 1e9 --json >"$T/k.json" 2>/dev/null && ok || bad "threshold run"
[ "$(fig "$T/k.json" .online.copies_moved)" = 0 ] && ok || bad "moved under threshold 1e9"
[ "$(fig "$T/k.json" .online.max_over_mean)" = "$st" ] && ok || bad "kept online differs from static"
# Deterministic: the same figures twice.
"$EPLB" replay --input "$S" "${shape[@]}" --json >"$T/d2.json" 2>/dev/null
cmp -s "$T/d.json" "$T/d2.json" && ok || bad "two runs differ"

# ---- the table and the SVG ----
"$EPLB" replay --input "$S" "${shape[@]}" --every 4 --windows 2 --decay 0.5 --svg "$T/r.svg" >"$T/table" 2>"$T/err" && ok || bad "svg run: $(cat "$T/err")"
xmllint --noout "$T/r.svg" 2>/dev/null && ok || bad "svg not well-formed"
grep -q '<polyline' "$T/r.svg" && ok || bad "svg has no lines"
[ "$(grep -c '^[0-9]' "$T/table")" = 32 ] && ok || bad "table lacks a row per window"
grep -q '^overall' "$T/table" && ok || bad "table lacks the overall row"
grep -q '^bytes moved: online' "$T/table" && ok || bad "table lacks bytes moved"

# ---- real counts: a folder of domains, and the same windows as a list ----
"$EPLB" replay --input "$DATA/olmoe" "${shape[@]}" --json >"$T/f.json" 2>"$T/err" && ok || bad "folder: $(cat "$T/err")"
[ "$(fig "$T/f.json" .num_windows)" = 3 ] && ok || bad "folder windows"
jq -s '.' "$DATA/olmoe/olmoe_arxiv.json" "$DATA/olmoe/olmoe_c4.json" "$DATA/olmoe/olmoe_github.json" >"$T/list.json"
"$EPLB" replay --input "$T/list.json" "${shape[@]}" --json >"$T/l.json" 2>/dev/null && ok || bad "list of the folder"
cmp -s "$T/f.json" "$T/l.json" && ok || bad "folder and list differ"
le "$(fig "$T/f.json" .oracle.max_over_mean)" "$(fig "$T/f.json" .static.max_over_mean)" && ok || bad "real oracle above static"

# ---- bad inputs: exit status and one line naming the file and field ----
expect() {
  local code=$1 needle=$2
  shift 2
  "$EPLB" replay "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then bad "exit $rc (want $code) for: $* :: $(cat "$T/err")"; return; fi
  grep -q -- "$needle" "$T/err" && ok || bad "message lacks '$needle': $(cat "$T/err")"
  [ "$(wc -l <"$T/err")" -eq 1 ] && ok || bad "not one line: $(cat "$T/err")"
  [ ! -s "$T/out" ] && ok || bad "printed a result for: $*"
}
echo '[{"0": {"0": 5}}, {"0": {"x": 1}}]' >"$T/badkey.json"
echo '[{"0": {"0": 5}}, {"0": {"1": -3}}]' >"$T/negative.json"
echo '{"0": {"0": 5}}' >"$T/one.json"
echo '[]' >"$T/empty.json"
echo '[{"0": {"0": 5}}, {"1": {"0": 5}}]' >"$T/layers.json"
echo '[{"0": {"0": 5}' >"$T/syntax.json"
mkdir "$T/nojson"
expect 1 'badkey.json\[1\]: layer "0": expert "x"' --input "$T/badkey.json" --num_replicas 8 --num_gpus 8
expect 1 'negative.json\[1\]: layer "0"' --input "$T/negative.json" --num_replicas 8 --num_gpus 8
expect 1 'one.json: not a non-empty JSON list' --input "$T/one.json" --num_replicas 8 --num_gpus 8
expect 1 'empty.json: not a non-empty JSON list' --input "$T/empty.json" --num_replicas 8 --num_gpus 8
expect 1 'layers.json\[1\]: its layer ids differ' --input "$T/layers.json" --num_replicas 8 --num_gpus 8
expect 1 'syntax.json: line' --input "$T/syntax.json" --num_replicas 8 --num_gpus 8
expect 1 'missing.json' --input "$T/missing.json" "${shape[@]}"
expect 1 'nojson: no \*.json' --input "$T/nojson" "${shape[@]}"
expect 1 'series.json: num_replicas 60' --input "$S" --num_replicas 60 --num_gpus 8
expect 2 'every' --input "$S" "${shape[@]}" --every 0
expect 2 'decay' --input "$S" "${shape[@]}" --decay 0
expect 2 'max_moves' --input "$S" "${shape[@]}" --max_moves -1
expect 2 'min_gain' --input "$S" "${shape[@]}" --min_gain -0.5
expect 2 'num_replicas R and --num_gpus G are required' --input "$S"
expect 2 'input SERIES is required' "${shape[@]}"
touch "$T/keep.svg"
echo keep >"$T/keep.svg"
"$EPLB" replay --input "$T/badkey.json" --num_replicas 8 --num_gpus 8 --svg "$T/keep.svg" 2>/dev/null
[ "$(cat "$T/keep.svg")" = keep ] && ok || bad "svg touched on a failure"

echo "cli_replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
