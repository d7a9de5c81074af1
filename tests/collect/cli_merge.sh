#!/usr/bin/env bash
# cli_merge.sh - `eplb merge IN... -o OUT`: the sum is checked with jq (not with eplb's reader),
# integers stay exact, and every bad input exits non-zero with a message naming the file while
# an existing OUT is left untouched.
# Environment (set by ctest): EPLB (the program).
set -u
EPLB=${EPLB:?}
T=$(mktemp -d /tmp/eplb_cli_merge.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- inputs: sparse, unordered, different layers per file ----
cat >"$T/a.json" <<'EOF'
{"1": {"3": 10, "0": 5}, "0": {"2": 7}}
EOF
cat >"$T/b.json" <<'EOF'
{"0": {"2": 1, "5": 4}, "4": {"1": 9}}
EOF
cat >"$T/c.json" <<'EOF'
{"logical_count": [[1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 2]]}
EOF

# ---- the sum equals jq's sum of the inputs ----
# jq_sum FILES...: {"layer": {"expert": total}} of the seed-format inputs.
jq_sum() {
  jq -s 'reduce .[] as $f ({}; reduce ($f | to_entries[]) as $l (.;
           reduce ($l.value | to_entries[]) as $e (.; .[$l.key][$e.key] += $e.value)))' "$@"
}
# same_counts SUM OUT: every count of SUM is in OUT and OUT holds nothing else but zeros.
same_counts() {
  jq -e --slurpfile s "$1" '. as $o | ($s[0] | to_entries | all(.key as $l |
      .value | to_entries | all($o[$l][.key] == .value)))
    and (to_entries | all(.key as $l | .value | to_entries | all(.value == (($s[0][$l] // {})[.key] // 0))))' "$2" >/dev/null
}
if "$EPLB" merge "$T/a.json" "$T/b.json" -o "$T/out.json" 2>"$T/err"; then
  ok
  jq_sum "$T/a.json" "$T/b.json" >"$T/expect.json"
  same_counts "$T/expect.json" "$T/out.json" && ok || bad "sum differs from jq's: $(cat "$T/out.json")"
  jq -e 'keys == ["0", "1", "4"]' "$T/out.json" >/dev/null && ok || bad "layers are the union"
  jq -e '[.[] | length] | all(. == 6)' "$T/out.json" >/dev/null && ok || bad "every layer has E = 6 experts"
  grep -q '2 files' "$T/err" && ok || bad "summary line: $(cat "$T/err")"
else
  bad "merge failed: $(cat "$T/err")"
fi

# The order of the inputs does not matter.
"$EPLB" merge "$T/b.json" "$T/a.json" -o "$T/out_ba.json" 2>/dev/null && cmp -s "$T/out.json" "$T/out_ba.json" &&
  ok || bad "order of inputs"
# A single file is copied as it is (in the seed format).
"$EPLB" merge "$T/a.json" -o "$T/one.json" 2>/dev/null && same_counts <(jq_sum "$T/a.json") "$T/one.json" &&
  ok || bad "one input"
# SGLang dumps are summed with seed files (rows are layers 0..L-1).
"$EPLB" merge "$T/a.json" "$T/c.json" -o "$T/mixed.json" 2>/dev/null &&
  jq -e '.["0"]["2"] == 8 and .["1"]["5"] == 2 and .["1"]["3"] == 10' "$T/mixed.json" >/dev/null &&
  ok || bad "seed + SGLang inputs"
# --num_experts widens every layer.
"$EPLB" merge "$T/a.json" --num_experts 9 -o "$T/wide.json" 2>/dev/null &&
  jq -e '[.[] | length] | all(. == 9)' "$T/wide.json" >/dev/null && ok || bad "--num_experts"

# ---- integers are exact up to 2^63 - 1 (jq uses doubles, so compare the text) ----
echo '{"0": {"0": 4611686018427387904, "1": 9007199254740993}}' >"$T/big1.json"
echo '{"0": {"0": 4611686018427387903, "1": 1}}' >"$T/big2.json"
"$EPLB" merge "$T/big1.json" "$T/big2.json" -o "$T/big.json" 2>/dev/null &&
  grep -q '"0": 9223372036854775807' "$T/big.json" && grep -q '"1": 9007199254740994' "$T/big.json" &&
  ok || bad "exact integer sums: $(cat "$T/big.json")"

# ---- bad inputs: exit 1, a message naming the file, OUT untouched ----
echo 'precious' >"$T/keep.json"
# expect_fail WHAT PATTERN ARGS...: merge must fail with PATTERN in its message, keep.json intact.
expect_fail() {
  local what=$1 pattern=$2
  shift 2
  "$EPLB" merge "$@" -o "$T/keep.json" 2>"$T/err"
  local rc=$?
  if [ $rc -ne 1 ]; then bad "$what: exit $rc, expected 1"; return; fi
  grep -q -- "$pattern" "$T/err" || { bad "$what: message '$(cat "$T/err")' lacks '$pattern'"; return; }
  [ "$(wc -l <"$T/err")" -eq 1 ] || { bad "$what: message is not one line"; return; }
  [ "$(cat "$T/keep.json")" = precious ] || { bad "$what: output was modified"; return; }
  ok
}
echo '{"0": {"1": 3,}}' >"$T/syntax.json"
echo '{"0": {"1": -3}}' >"$T/negative.json"
echo '{"0": {"x": 3}}' >"$T/badkey.json"
echo '{"0": {"1": "3"}}' >"$T/string.json"
echo '{"0": {"0": 9223372036854775807}}' >"$T/max.json"
expect_fail "missing file" "nope.json" "$T/a.json" "$T/nope.json"
expect_fail "JSON syntax" "syntax.json" "$T/a.json" "$T/syntax.json"
expect_fail "negative count" "negative.json" "$T/negative.json"
expect_fail "bad expert key" "badkey.json" "$T/badkey.json"
expect_fail "string count" "string.json" "$T/string.json"
expect_fail "sum over 2^63-1" "" "$T/max.json" "$T/max.json"
expect_fail "expert beyond --num_experts" "" "$T/a.json" --num_experts 2

# An output folder that does not exist: exit 1, nothing created.
"$EPLB" merge "$T/a.json" -o "$T/no/such/dir/out.json" 2>"$T/err"
[ $? -eq 1 ] && grep -q 'no/such/dir' "$T/err" && ok || bad "missing output folder: $(cat "$T/err")"

# ---- bad command lines: exit 2 ----
# expect_usage WHAT ARGS...: merge must exit 2 with a message.
expect_usage() {
  local what=$1
  shift
  "$EPLB" merge "$@" 2>"$T/err" >/dev/null
  local rc=$?
  [ $rc -eq 2 ] && [ -s "$T/err" ] && ok || bad "$what: exit $rc, message '$(cat "$T/err")'"
}
expect_usage "no input" -o "$T/x.json"
expect_usage "no output" "$T/a.json"
expect_usage "unknown option" "$T/a.json" -o "$T/x.json" --frobnicate
expect_usage "bad --num_experts" "$T/a.json" -o "$T/x.json" --num_experts zero
expect_usage "-o without value" "$T/a.json" -o
[ ! -e "$T/x.json" ] && ok || bad "a usage error wrote output"
"$EPLB" merge --help | grep -q -- '-o, --output' && ok || bad "--help"

echo "cli_merge: $pass passed, $fail failed"
[ $fail -eq 0 ]
