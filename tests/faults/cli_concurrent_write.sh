#!/usr/bin/env bash
# cli_concurrent_write.sh - two processes writing the same output at once (issue #17): two loops
# of `eplb plan` with different parameters replace one --output_path ROUNDS times each, at the
# same time, while a third loop reads the file again and again. Every read and the final file
# must be byte for byte one of the two complete results (each made alone first), never a mix, a
# stub or a missing file; no temp file may be left. The same for `eplb merge -o`.
# Environment (set by ctest): EPLB (the program), SRC (the source tree).
set -u
EPLB=${EPLB:?} SRC=${SRC:?}
ROUNDS=${ROUNDS:-40}
T=$(mktemp -d /tmp/eplb_cli_concurrent.XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# race NAME CMD_A CMD_B: runs "CMD_X OUT" alone for both references, then both loops at once with
# a reader; checks every read.
race() {
  local name=$1 a=$2 b=$3 out=$T/$1.out
  eval "$a \"$T/$name.ref_a\"" 2>/dev/null && eval "$b \"$T/$name.ref_b\"" 2>/dev/null ||
    { bad "$name: a reference run failed"; return; }
  cmp -s "$T/$name.ref_a" "$T/$name.ref_b" && { bad "$name: the two results are equal"; return; }
  cp "$T/$name.ref_a" "$out"
  (for i in $(seq $ROUNDS); do eval "$a \"$out\"" 2>/dev/null || echo "a $i failed" >>"$T/$name.err"; done) &
  local wa=$!
  (for i in $(seq $ROUNDS); do eval "$b \"$out\"" 2>/dev/null || echo "b $i failed" >>"$T/$name.err"; done) &
  local wb=$!
  pids="$wa $wb"
  local reads=0 mixed=0
  while kill -0 $wa 2>/dev/null || kill -0 $wb 2>/dev/null; do
    # cat, not cp: GNU cp refuses a source "replaced while being copied" (exit 1 though it read
    # one whole file); cat reads the file it opened, so only a missing file fails here.
    cat "$out" >"$T/$name.read" 2>"$T/read.err" ||
      { mixed=$((mixed + 1)); echo "read $reads: cannot be read: $(head -c 300 "$T/read.err")"; }
    if ! cmp -s "$T/$name.read" "$T/$name.ref_a" && ! cmp -s "$T/$name.read" "$T/$name.ref_b"; then
      mixed=$((mixed + 1))
      [ $mixed -le 3 ] && echo "read $reads: $(wc -c <"$T/$name.read") bytes, neither result"
    fi
    reads=$((reads + 1))
  done
  wait $wa $wb
  pids=""
  [ ! -s "$T/$name.err" ] && ok || bad "$name: some writes failed: $(head -3 "$T/$name.err")"
  [ $mixed -eq 0 ] && ok || bad "$name: $mixed of $reads reads were not one complete result"
  cmp -s "$out" "$T/$name.ref_a" || cmp -s "$out" "$T/$name.ref_b" && ok || bad "$name: final file is neither result"
  [ -z "$(ls "$out".tmp.* 2>/dev/null)" ] && ok || bad "$name: temp files left: $(ls "$out".tmp.*)"
  echo "$name: 2 x $ROUNDS concurrent writes, $reads reads, $mixed bad"
}

IN=$SRC/examples/token_collects_all.json
race plan "'$EPLB' plan --input '$IN' --num_replicas 72 --num_gpus 8 --output_path" \
  "'$EPLB' plan --input '$IN' --num_replicas 80 --num_gpus 8 --policy deepseek --output_path"
# merge: one file summed once and twice (different counts, same shape).
race merge "'$EPLB' merge '$IN' -o" "'$EPLB' merge '$IN' '$IN' -o"

echo "cli_concurrent_write: $pass passed, $fail failed"
[ $fail -eq 0 ]
