#!/usr/bin/env bash
# cli_full_disk.sh - writing to a full disk (issue #17): a small tmpfs is mounted, the old output
# is put there, and the rest is filled (all of it, then all but a few KB, less than the new file
# needs). `eplb plan`, `eplb merge` and `eplb simulate` (root's gathered file) must then fail
# (exit 1) with one message naming the file and "No space left on device", leave the old file
# byte for byte, and leave no temp file. Mounting needs root (CAP_SYS_ADMIN): where it is
# refused the test exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), never as passed.
# Environment (set by ctest): EPLB (the program), MPIRUN, SRC (the source tree).
set -u
EPLB=${EPLB:?} MPIRUN=${MPIRUN:?} SRC=${SRC:?}
SKIP=77
DISK_KB=512     # the tmpfs
SLACK_KB=8      # what "nearly full" leaves free (the new files need far more)
T=$(mktemp -d /tmp/eplb_cli_full_disk.XXXXXX)
D=$T/disk
mounted=0
cleanup() {
  [ $mounted -eq 1 ] && umount "$D" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$D"
if ! mount -t tmpfs -o size=${DISK_KB}k tmpfs "$D" 2>"$T/mount.err"; then
  echo "SKIP: cannot mount a tmpfs here: $(cat "$T/mount.err")"
  exit $SKIP
fi
mounted=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

IN=$SRC/examples/token_collects_all.json
# A large input: 64 layers x 256 experts, so that every new output needs more than SLACK_KB.
awk 'BEGIN { printf "{"; for (l = 0; l < 64; l++) { printf "%s\"%d\": {", (l ? ", " : ""), l;
  for (e = 0; e < 256; e++) printf "%s\"%d\": %d", (e ? ", " : ""), e, (l * 31 + e * 17) % 1000 + 1;
  printf "}" } print "}" }' >"$T/big.json"

# fill MODE: empties the filler, then fills the tmpfs completely (MODE full) or up to SLACK_KB.
fill() {
  rm -f "$D"/filler*
  dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null # stops at ENOSPC
  [ "$1" = full ] || truncate -s -${SLACK_KB}K "$D/filler"
}
# expect_enospc WHAT FILE CMD...: CMD fails with exit 1 and one message naming FILE and ENOSPC;
# FILE keeps its old content; no temp file is left.
expect_enospc() {
  local what=$1 file=$2
  shift 2
  cp "$file" "$T/old"
  timeout 120 "$@" >/dev/null 2>"$T/err"
  local rc=$?
  [ $rc -eq 1 ] || { bad "$what: exit $rc (expected 1): $(cat "$T/err")"; return; }
  grep -q "$(basename "$file").*No space left on device" "$T/err" ||
    { bad "$what: message '$(cat "$T/err")' lacks the file and 'No space left on device'"; return; }
  cmp -s "$T/old" "$file" || { bad "$what: the old file changed"; return; }
  [ -z "$(ls "$file".tmp.* 2>/dev/null)" ] || { bad "$what: temp file left"; return; }
  echo "$what: $(grep -m1 'No space' "$T/err")"
  ok
}

# The old files, written while there is room.
plan=(--input "$T/big.json" --num_replicas 320 --num_gpus 32 --num_groups 4 --num_nodes 2)
"$EPLB" plan "${plan[@]}" --output_path "$D/expert_map.json" 2>/dev/null || { echo "FAIL: first plan"; exit 1; }
"$EPLB" merge "$IN" -o "$D/merged.json" 2>/dev/null || { echo "FAIL: first merge"; exit 1; }
printf 'generate:\n  token_collects: true\n  token_save_path: %s\n' "$D" >"$T/cfg.yaml"
"$EPLB" merge "$IN" -o "$D/token_collects_all.json" 2>/dev/null || { echo "FAIL: first gathered file"; exit 1; }
sim=(--config "$T/cfg.yaml" --layers 64 --experts 256 --topk 8 --tokens 100 --steps 1 --seed 1)

for mode in full nearly; do
  fill $mode
  expect_enospc "plan, disk $mode" "$D/expert_map.json" "$EPLB" plan "${plan[@]}" --output_path "$D/expert_map.json"
  expect_enospc "merge, disk $mode" "$D/merged.json" "$EPLB" merge "$T/big.json" -o "$D/merged.json"
  expect_enospc "simulate (2 ranks), disk $mode" "$D/token_collects_all.json" \
    "$MPIRUN" -np 2 --oversubscribe "$EPLB" simulate "${sim[@]}"
done
# With room again, the same commands succeed.
rm -f "$D"/filler*
"$EPLB" plan "${plan[@]}" --output_path "$D/expert_map.json" 2>/dev/null && ok || bad "plan fails with room"

echo "cli_full_disk: $pass passed, $fail failed"
[ $fail -eq 0 ]
