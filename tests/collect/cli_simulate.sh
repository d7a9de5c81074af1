#!/usr/bin/env bash
# cli_simulate.sh - `mpirun -np R eplb simulate` with 1, 2 and 4 ranks: one gathered file, equal
# to the sum of the ranks' own dumps (summed by jq and by `eplb merge`), each layer summing to
# ranks x steps x tokens x topk; token_collects: false writes nothing; bad configs and flags fail
# on every rank with a message, write nothing, and never hang.
# Environment (set by ctest): EPLB (the program), MPIRUN.
set -u
EPLB=${EPLB:?} MPIRUN=${MPIRUN:?}
T=$(mktemp -d /tmp/eplb_cli_simulate.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
HANG_LIMIT=60 # seconds; a run that takes longer counts as a hang
LAYERS=3 EXPERTS=16 TOPK=4 TOKENS=500 STEPS=3
shape=(--layers $LAYERS --experts $EXPERTS --topk $TOPK --tokens $TOKENS --steps $STEPS)

# mpi NP ARGS...: runs `eplb simulate ARGS` on NP ranks under mpirun, with a time limit; NP 0
# runs it without mpirun (one rank; mpirun takes a second or two to wind down a failed job).
mpi() {
  local np=$1
  shift
  if [ "$np" -eq 0 ]; then
    timeout $HANG_LIMIT "$EPLB" simulate "$@"
  else
    timeout $HANG_LIMIT "$MPIRUN" -np "$np" --oversubscribe "$EPLB" simulate "$@"
  fi
}
# entries DIR: number of files in DIR.
entries() { find "$1" -mindepth 1 | wc -l; }
# cfg NAME TEXT: writes a config file.
cfg() { printf '%b' "$2" >"$T/$1"; }

# ---- gathered file = sum of every rank's dump, with 1, 2 and 4 ranks ----
for np in 1 2 4; do
  d=$T/np$np
  mkdir -p "$d/out"
  cfg "np$np.yaml" "model: {name: synthetic}\ngenerate:\n  token_collects: true\n  token_save_path: $d/out\n"
  if ! mpi $np --config "$T/np$np.yaml" "${shape[@]}" --seed 11 --skew 1.5 \
    --dump-local "$d/local.{rank}.json" 2>"$d/err"; then
    bad "np $np: simulate failed: $(cat "$d/err")"
    continue
  fi
  gathered=$d/out/token_collects_all.json
  [ "$(entries "$d/out")" -eq 1 ] && [ -f "$gathered" ] && ok || bad "np $np: not exactly one file: $(ls "$d/out")"
  [ "$(ls "$d"/local.*.json | wc -l)" -eq $np ] && ok || bad "np $np: one dump per rank"
  # Each layer sums to ranks x steps x tokens x topk; each rank's dump to steps x tokens x topk.
  jq -e --argjson n $((np * STEPS * TOKENS * TOPK)) --argjson l $LAYERS \
    'length == $l and ([.[] | [.[]] | add == $n] | all)' "$gathered" >/dev/null &&
    ok || bad "np $np: layer sums differ from $((np * STEPS * TOKENS * TOPK))"
  jq -e -s --argjson n $((STEPS * TOKENS * TOPK)) '[.[][] | [.[]] | add == $n] | all' "$d"/local.*.json >/dev/null &&
    ok || bad "np $np: a dump's layer sum differs from $((STEPS * TOKENS * TOPK))"
  # Element-wise: gathered == jq's sum of the dumps.
  jq -e -n --slurpfile g "$gathered" '[inputs] as $d | $g[0] | to_entries | all(.key as $l |
      .value | to_entries | all(.key as $e | .value == ([$d[][$l][$e]] | add)))' "$d"/local.*.json >/dev/null &&
    ok || bad "np $np: gathered file is not the element-wise sum of the dumps"
  # ... and == `eplb merge` of the dumps, byte for byte.
  "$EPLB" merge "$d"/local.*.json -o "$d/merged.json" 2>/dev/null && cmp -s "$d/merged.json" "$gathered" &&
    ok || bad "np $np: eplb merge of the dumps differs from the gathered file"
  if [ $np -gt 1 ]; then # every rank draws different tokens
    cmp -s "$d/local.0.json" "$d/local.1.json" && bad "np $np: ranks 0 and 1 recorded the same" || ok
  fi
  grep -q "$np rank" "$d/err" && [ "$(wc -l <"$d/err")" -eq 1 ] && ok || bad "np $np: one summary line: $(cat "$d/err")"
done

# ---- the router: seeded, skewed ----
mkdir -p "$T/seed/out"
cfg seed.yaml "generate:\n  token_collects: yes\n  token_save_path: $T/seed/out\n"
run_seed() { # run_seed SEED SKEW COPY
  mpi 2 --config "$T/seed.yaml" "${shape[@]}" --seed "$1" --skew "$2" 2>/dev/null &&
    cp "$T/seed/out/token_collects_all.json" "$T/seed/$3"
}
run_seed 5 1 a.json && run_seed 5 1 b.json && run_seed 6 1 c.json || bad "seeded runs failed"
cmp -s "$T/seed/a.json" "$T/seed/b.json" && ok || bad "same seed, different counts"
cmp -s "$T/seed/a.json" "$T/seed/c.json" && bad "different seeds, same counts" || ok
# Skew 0 is uniform (every expert within 15% of the mean); skew 2 has an expert at least twice
# the mean (32 experts, top-2, so one hot expert is not capped by the one-per-token rule).
skewed=(--layers 2 --experts 32 --topk 2 --tokens 4000 --steps 2)
mpi 1 --config "$T/seed.yaml" "${skewed[@]}" --seed 3 --skew 0 2>/dev/null &&
  jq -e '[.[] | ([.[]] | add / length) as $m | [.[]] | all(. > 0.85 * $m and . < 1.15 * $m)] | all' \
    "$T/seed/out/token_collects_all.json" >/dev/null && ok || bad "skew 0 is not uniform"
mpi 1 --config "$T/seed.yaml" "${skewed[@]}" --seed 3 --skew 2 2>/dev/null &&
  jq -e '[.[] | ([.[]] | add / length) as $m | [.[]] | max > 2 * $m] | all' \
    "$T/seed/out/token_collects_all.json" >/dev/null && ok || bad "skew 2 is not skewed"

# ---- token_collects: false records and writes nothing ----
mkdir -p "$T/off/out"
cfg off.yaml "generate:\n  token_collects: false\n  token_save_path: $T/off/out\n"
mpi 2 --config "$T/off.yaml" "${shape[@]}" --seed 1 --dump-local "$T/off/local.{rank}.json" 2>"$T/off/err"
rc=$?
[ $rc -eq 0 ] && ok || bad "token_collects false: exit $rc"
grep -q 'nothing recorded, nothing written' "$T/off/err" && ok || bad "token_collects false: no notice: $(cat "$T/off/err")"
[ "$(entries "$T/off/out")" -eq 0 ] && [ -z "$(ls "$T"/off/local.* 2>/dev/null)" ] && ok || bad "token_collects false wrote files"

# ---- bad configs: exit 1 on every rank, a message naming key and line, nothing written ----
mkdir -p "$T/badcfg"
echo 'old' >"$T/badcfg/token_collects_all.json"
# expect_fail WHAT PATTERN NP ARGS...: simulate fails (1) in time, with PATTERN in its messages.
expect_fail() {
  local what=$1 pattern=$2 np=$3
  shift 3
  mpi "$np" "$@" 2>"$T/err" >/dev/null
  local rc=$?
  [ $rc -ne 124 ] || { bad "$what: hung"; return; }
  [ $rc -ne 0 ] || { bad "$what: exit 0"; return; }
  grep -q -- "$pattern" "$T/err" || { bad "$what: message '$(cat "$T/err")' lacks '$pattern'"; return; }
  [ "$(cat "$T/badcfg/token_collects_all.json")" = old ] || { bad "$what: file modified"; return; }
  ok
}
cfg nopath.yaml "generate:\n  token_collects: true\n"
cfg syntax.yaml "generate:\n  token_collects: true\n  token_save_path: [oops\n"
cfg type.yaml "generate:\n  token_collects: 7\n  token_save_path: $T/badcfg\n"
cfg nodir.yaml "generate:\n  token_collects: true\n  token_save_path: $T/badcfg/missing\n"
cfg notdir.yaml "generate:\n  token_collects: true\n  token_save_path: $T/badcfg/token_collects_all.json\n"
expect_fail "missing token_save_path" "nopath.yaml:2: generate.token_save_path: missing" 0 \
  --config "$T/nopath.yaml" "${shape[@]}" --seed 1
expect_fail "YAML syntax" "syntax.yaml:.*syntax error" 0 --config "$T/syntax.yaml" "${shape[@]}" --seed 1
expect_fail "wrong type" "type.yaml:2: generate.token_collects: expected a bool" 0 \
  --config "$T/type.yaml" "${shape[@]}" --seed 1
expect_fail "missing config" "no.yaml: cannot open" 0 --config "$T/no.yaml" "${shape[@]}" --seed 1
expect_fail "save folder missing" "badcfg/missing" 0 --config "$T/nodir.yaml" "${shape[@]}" --seed 1
expect_fail "save path is a file" "not a folder" 0 --config "$T/notdir.yaml" "${shape[@]}" --seed 1
# Under mpirun: a config error and a gather error on root reach both ranks, nobody hangs.
expect_fail "np 2: missing token_save_path" "nopath.yaml:2: generate.token_save_path: missing" 2 \
  --config "$T/nopath.yaml" "${shape[@]}" --seed 1
expect_fail "np 2: save folder missing" "badcfg/missing" 2 --config "$T/nodir.yaml" "${shape[@]}" --seed 1
[ "$(entries "$T/badcfg")" -eq 1 ] && ok || bad "a failed run left files: $(ls "$T/badcfg")"

# ---- bad command lines: exit 2 before MPI starts ----
expect_usage() { # expect_usage WHAT NP ARGS...
  local what=$1 np=$2
  shift 2
  mpi "$np" "$@" 2>"$T/err" >/dev/null
  local rc=$?
  [ $rc -eq 2 ] && grep -q "eplb simulate:" "$T/err" && ok || bad "$what: exit $rc, '$(cat "$T/err")'"
}
"$EPLB" simulate --config "$T/np1.yaml" "${shape[@]}" 2>"$T/err"
[ $? -eq 2 ] && grep -q -- '--seed is required' "$T/err" && ok || bad "missing --seed: $(cat "$T/err")"
"$EPLB" simulate --help | grep -q -- '--dump-local' && ok || bad "--help"
expect_usage "topk above experts" 0 --config "$T/np1.yaml" --layers 1 --experts 4 --topk 5 --tokens 1 --steps 1 --seed 1
expect_usage "negative tokens" 0 --config "$T/np1.yaml" --layers 1 --experts 4 --topk 1 --tokens -3 --steps 1 --seed 1
expect_usage "no config" 0 "${shape[@]}" --seed 1
expect_usage "unknown flag" 0 --config "$T/np1.yaml" "${shape[@]}" --seed 1 --bogus
expect_usage "dump without {rank} on 2 ranks" 2 --config "$T/np1.yaml" "${shape[@]}" --seed 1 --dump-local "$T/x.json"
[ ! -e "$T/x.json" ] && ok || bad "a usage error wrote a dump"

echo "cli_simulate: $pass passed, $fail failed"
[ $fail -eq 0 ]
