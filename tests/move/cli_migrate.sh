#!/usr/bin/env bash
# cli_migrate.sh - `eplb migrate` from the command line: --dry-run JSON checked against a receive
# count computed here with jq, migrations under mpirun at 2, 4 and 8 ranks with --verify (out of
# place and in place), a corrupted byte caught by --verify, and bad inputs (exit != 0, one line).
# Environment (set by ctest): EPLB (the program), MPIRUN, DATA (tests/data).
set -u
EPLB=${EPLB:?} MPIRUN=${MPIRUN:?} DATA=${DATA:?}
M=$DATA/move
T=$(mktemp -d /tmp/eplb_cli_migrate.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
mpi() { "$MPIRUN" --oversubscribe -np "$@"; }

# Independent count (jq) of the copies a move from the initial layout must receive: per layer
# and device, the distinct experts of the map that the device's initial block lacks.
needed_from_initial() {
  jq '([.layer_list[].device_list[].device_expert[]] | max + 1) as $E
      | (.layer_list[0].device_count) as $G | ((($E + $G - 1) / $G) | floor) as $k
      | [.layer_list[].device_list[] | .device_id as $d
         | ((.device_expert | unique) - [range($d * $k; $d * $k + $k) | . % $E]) | length] | add' "$1"
}
# Independent count (jq) of the copies a move from map A to map B must receive.
needed_between() {
  jq -n --slurpfile a "$1" --slurpfile b "$2" '[range($b[0].layer_list | length) as $l
      | range($b[0].layer_list[$l].device_count) as $d
      | (($b[0].layer_list[$l].device_list[$d].device_expert | unique)
         - $a[0].layer_list[$l].device_list[$d].device_expert) | length] | add'
}
# The map with every device's list moved to the next device: nothing stays where it was.
rotate() {
  jq -c '.layer_list[].device_list |= (map(.device_expert) as $e
         | [range($e | length) | {device_id: ., device_expert: $e[(. + 1) % ($e | length)]}])' "$1"
}
# Checks that a failed command printed exactly one "eplb migrate:" line (mpirun adds its own).
one_line() { [ "$(grep -c '^eplb migrate:' "$1")" -eq 1 ]; }

# ---- help ----
"$EPLB" migrate --help | grep -q -- '--expert_bytes' && ok || bad "migrate --help"

# ---- dry run: the plan's statistics as JSON ----
for map in map_g2_2x6_r8 map_g4_hier_4x16_r24 map_g8_seed_1x32_r40 map_g8_skewed_6x32_r64; do
  if "$EPLB" migrate --dry-run --from initial --to "$M/$map.json" --expert_bytes 1000,24 \
      >"$T/dry.json" 2>"$T/err"; then
    want=$(needed_from_initial "$M/$map.json")
    jq -e --argjson w "$want" '.receives == $w' "$T/dry.json" >/dev/null && ok ||
      bad "$map: receives $(jq .receives "$T/dry.json"), independent count $want"
    jq -e '.keeps + .local_copies + .receives == .slots and .upstream_copies == .slots
           and .bytes == .receives * 1024 and .copy_bytes == 1024
           and .staging_bytes == .staging_slots * 1024' "$T/dry.json" >/dev/null && ok ||
      bad "$map: dry-run stats inconsistent: $(cat "$T/dry.json")"
  else
    bad "$map: dry run failed: $(cat "$T/err")"
  fi
done
"$EPLB" migrate --dry-run --from "$M/map_g4_hier_4x16_r24.json" --to "$M/map_g4_hier_4x16_r24.json" \
  >"$T/same.json" && jq -e '.receives == 0 and .keeps == .slots' "$T/same.json" >/dev/null && ok ||
  bad "nothing moves between equal maps"
# --relabel: never more copies, and none at all for a map that only renumbers the devices
for map in map_g4_hier_4x16_r24 map_g8_skewed_6x32_r64; do
  a=$("$EPLB" migrate --dry-run --from initial --to "$M/$map.json" | jq .receives)
  b=$("$EPLB" migrate --dry-run --from initial --to "$M/$map.json" --relabel | jq .receives)
  [ -n "$a" ] && [ -n "$b" ] && [ "$b" -le "$a" ] && ok || bad "$map: --relabel moves $b, plain $a"
done
rotate "$M/map_g4_hier_4x16_r24.json" >"$T/rot4.json"
"$EPLB" migrate --dry-run --from "$M/map_g4_hier_4x16_r24.json" --to "$T/rot4.json" --relabel |
  jq -e '.receives == 0 and .keeps == .slots' >/dev/null && ok || bad "--relabel undoes a rotation"
"$EPLB" migrate --dry-run --from "$M/map_g4_hier_4x16_r24.json" --to "$T/rot4.json" --in_place \
  >"$T/rot.json" &&
  jq -e --argjson w "$(needed_between "$M/map_g4_hier_4x16_r24.json" "$T/rot4.json")" \
    '.receives == $w and .receives > 0' "$T/rot.json" >/dev/null && ok ||
  bad "map to rotated map: $(jq -c . "$T/rot.json")"

# ---- migrations under mpirun, every byte verified ----
run_ok() { # NP ARGS...: the run succeeds and rank 0 reports every byte verified
  local np=$1
  shift
  if mpi "$np" "$EPLB" migrate "$@" --verify >"$T/out" 2>"$T/err" &&
    grep -q 'every byte verified' "$T/out" && [ "$(wc -l <"$T/out")" -eq 1 ]; then
    ok
  else
    bad "np $np migrate $*: $(cat "$T/out" "$T/err" | head -5)"
  fi
}
run_ok 2 --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 4096 --tensors 3
run_ok 4 --from initial --to "$M/map_g4_hier_4x16_r24.json" --expert_bytes 8192,4096,64
run_ok 8 --from initial --to "$M/map_g8_skewed_6x32_r64.json" --expert_bytes 2048,16
run_ok 8 --from initial --to "$M/map_g8_seed_1x32_r40.json" --expert_bytes 1000 --gpus_per_node 4
run_ok 8 --from initial --to "$M/map_g8_skewed_6x32_r64.json" --expert_bytes 999 --relabel --gpus_per_node 2
run_ok 4 --from "$M/map_g4_hier_4x16_r24.json" --to "$T/rot4.json" --expert_bytes 3000,7 --in_place
run_ok 4 --from "$T/rot4.json" --to "$M/map_g4_hier_4x16_r24.json" --expert_bytes 512 --no_align
rotate "$M/map_g8_skewed_6x32_r64.json" >"$T/rot8.json"
run_ok 8 --from "$M/map_g8_skewed_6x32_r64.json" --to "$T/rot8.json" --expert_bytes 1024 --in_place
# the copies reported moved are the independent count
mpi 2 "$EPLB" migrate --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 64 >"$T/out" 2>&1
grep -q "copies moved $(needed_from_initial "$M/map_g2_2x6_r8.json") " "$T/out" && ok ||
  bad "copies moved: $(cat "$T/out")"

# ---- a wrong byte fails the run ----
if mpi 2 "$EPLB" migrate --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 64 --verify \
    --corrupt >"$T/out" 2>"$T/err"; then
  bad "a corrupted byte passed --verify"
else
  grep -q 'verification failed: 1 bytes differ' "$T/err" && ok || bad "corrupt: $(cat "$T/err")"
fi

# ---- bad inputs: exit != 0, one line naming the problem ----
expect_fail() { # WANT_STATUS PATTERN CMD...: fails with that status and one matching line
  local want=$1 pat=$2
  shift 2
  "$@" >"$T/out" 2>"$T/err"
  local st=$?
  if [ "$st" -ne "$want" ]; then
    bad "exit $st, want $want: $*: $(head -3 "$T/err")"
  elif ! one_line "$T/err" || ! grep -q -- "$pat" "$T/err"; then
    bad "message for $*: $(cat "$T/err")"
  else
    ok
  fi
}
echo '{"moe_layer_count": 1, "layer_list": [' >"$T/broken.json"
expect_fail 2 'required' "$EPLB" migrate --dry-run --from initial
expect_fail 2 'expert_bytes' "$EPLB" migrate --from initial --to "$M/map_g2_2x6_r8.json"
expect_fail 2 'expert_bytes' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 0
expect_fail 2 'expert_bytes' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 12,,4
expect_fail 2 'expert_bytes' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 1k
expect_fail 2 'tensors' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 1,2 --tensors 3
expect_fail 2 'unknown option' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --bogus
expect_fail 2 'in_place' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --in_place
expect_fail 2 'gpus_per_node' "$EPLB" migrate --dry-run --from initial --to "$M/map_g2_2x6_r8.json" --gpus_per_node 0
expect_fail 1 'gpus_per_node' "$EPLB" migrate --dry-run --from initial --to "$M/map_g4_hier_4x16_r24.json" --gpus_per_node 3
expect_fail 1 'missing.json' "$EPLB" migrate --dry-run --from initial --to "$T/missing.json"
expect_fail 1 'broken.json' "$EPLB" migrate --dry-run --from initial --to "$T/broken.json"
expect_fail 1 'differ in shape' "$EPLB" migrate --dry-run --from "$M/map_g8_seed_1x32_r40.json" --to "$M/map_g8_skewed_6x32_r64.json"
expect_fail 1 'mpirun started 2 ranks' mpi 2 "$EPLB" migrate --from initial --to "$M/map_g4_hier_4x16_r24.json" --expert_bytes 64
expect_fail 1 'in_place' mpi 2 "$EPLB" migrate --from initial --to "$M/map_g2_2x6_r8.json" --expert_bytes 64 --in_place
expect_fail 1 'missing.json' mpi 2 "$EPLB" migrate --from initial --to "$T/missing.json" --expert_bytes 64

echo "cli_migrate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
