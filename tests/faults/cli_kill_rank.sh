#!/usr/bin/env bash
# cli_kill_rank.sh - a rank killed under mpirun (4 ranks), issue #17: SIGKILL of one rank while
# `eplb simulate` gathers, and while `eplb migrate` moves the weights. Each time the job must end
# within HANG_LIMIT seconds (no hang) with a non-zero exit, and the file the run would replace
# (token_collects_all.json; migrate's --write_map) must be byte for byte the previous one.
#   - simulate, at the gather: rank 2 is stopped (SIGSTOP) at a random moment of its routing; the
#     others finish theirs and wait for it at the gather's entry (its first collective); 2 s
#     later it is killed (SIGKILL). Up to 5 rounds, until one kill lands before the write.
#   - simulate, inside the gather: with a larger matrix (its file takes a while to write), root
#     (rank 0) is killed as soon as its temp file appears: it has summed the counts and is
#     writing, the others wait for its verdict (the gather's last collective). The create is
#     seen with inotifywait (a watch set before the job starts), polling where it is missing.
#   - migrate: rank 2 is killed at random moments of the move (4 rounds).
# A kill can only land after the job's result was complete (root writes after the last exchange;
# rank 2 may die just after, in MPI_Finalize): such a round must leave the new file complete,
# byte for byte the result of an undisturbed run with the same arguments; it is counted as late,
# and the test needs at least one kill that landed before the write in every part.
# Environment (set by ctest): EPLB (the program), MPIRUN, DATA (tests/data).
set -u
EPLB=${EPLB:?} MPIRUN=${MPIRUN:?} DATA=${DATA:?}
HANG_LIMIT=${HANG_LIMIT:-90} # seconds; longer counts as a hang
VICTIM=2                     # the rank killed
NP=4
T=$(mktemp -d /tmp/eplb_cli_kill.XXXXXX)
job=""
cleanup() {
  [ -n "$job" ] && kill -KILL "$job" 2>/dev/null
  [ -n "${inw:-}" ] && kill "$inw" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# rank_pid PID RANK: the pid of RANK among the children and grandchildren of PID (timeout, then
# mpirun, then the ranks); empty while not started.
rank_pid() {
  local p
  for p in $(pgrep -P "$1" 2>/dev/null) $(for c in $(pgrep -P "$1" 2>/dev/null); do pgrep -P "$c"; done); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return
    fi
  done
}
# wait_for SECONDS COMMAND...: polls COMMAND every 10 ms until it succeeds; 1 on time out.
wait_for() {
  local end=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt $end ] || return 1
    sleep 0.01
  done
}
# finish WHAT OLD NEW FILE START: waits for the job, then checks its time and that FILE is OLD
# byte for byte with a non-zero exit (the kill came first: sets landed=during) or NEW, complete
# (it came after the write: landed=late; exit 0 only when the rank had finished, so the kill
# found it in MPI_Finalize or exiting). Temp files a killed root leaves (FILE.tmp.*) are
# allowed and removed.
finish() {
  local what=$1 old=$2 new=$3 file=$4 start=$5
  wait "$job"
  local rc=$? took=$(($(date +%s) - start))
  job="" landed=bad
  rm -f "$file".tmp.*
  [ $rc -ne 124 ] && [ $took -lt $HANG_LIMIT ] || { bad "$what: hung (exit $rc after ${took}s)"; return; }
  if cmp -s "$old" "$file"; then
    [ $rc -ne 0 ] || { bad "$what: exit 0 but nothing written"; return; }
    landed=during
  elif cmp -s "$new" "$file"; then
    landed=late
  else
    bad "$what: $file is neither the previous file nor a complete new one"
    return
  fi
  echo "$what: exit $rc after ${took}s, kill landed $landed ($([ $landed = during ] && echo "old file intact" || echo "new file complete"))"
  ok
}
# reference FILE ARGS...: runs ARGS undisturbed (under timeout) and keeps FILE, what it wrote.
reference() {
  local keep=$1
  shift
  timeout $HANG_LIMIT "$MPIRUN" -np $NP --oversubscribe "$@" >/dev/null 2>"$T/err" ||
    { echo "FAIL: an undisturbed run failed: $(cat "$T/err")"; exit 1; }
  cp "$keep" "$keep.ref"
}
victim_up() { v=$(rank_pid "$job" $VICTIM) && [ -n "$v" ]; }
root_up() { r=$(rank_pid "$job" 0) && [ -n "$r" ]; }
root_writing() { [ -n "$(ls "$OUT".tmp.* 2>/dev/null)" ]; }
# without inotifywait: polls, and gives up when the job ended (the write was missed: such a
# round counts as late, and another round runs)
root_writing_or_done() { root_writing || ! kill -0 "$job" 2>/dev/null; }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# ---- simulate ----
mkdir -p "$T/out"
OUT=$T/out/token_collects_all.json
printf 'generate:\n  token_collects: true\n  token_save_path: %s\n' "$T/out" >"$T/cfg.yaml"
small=(--layers 8 --experts 256 --topk 8 --tokens 2000 --steps 60)
large=(--layers 32 --experts 16384 --topk 8 --tokens 2000 --steps 4)
for part in stopped inside; do
  if [ $part = stopped ]; then shape=("${small[@]}"); else shape=("${large[@]}"); fi
  run=("$EPLB" simulate --config "$T/cfg.yaml" "${shape[@]}" --seed 2)
  reference "$OUT" "${run[@]}"                      # the result of seed 2: $OUT.ref
  route_ms=$(sed -n 's/.*route+record \([0-9]*\)\.\([0-9][0-9][0-9]\) s.*/\1\2/p' "$T/err" | sed 's/^0*//')
  route_ms=${route_ms:-1000}
  timeout $HANG_LIMIT "$MPIRUN" -np $NP --oversubscribe "$EPLB" simulate --config "$T/cfg.yaml" \
    "${shape[@]}" --seed 1 >/dev/null 2>&1 || { echo "FAIL: seed 1 failed"; exit 1; }
  cp "$OUT" "$T/previous.json"                      # the file the killed runs would replace
  during=0
  for round in 1 2 3 4 5; do
    start=$(date +%s)
    inw=""
    if [ $part = inside ] && command -v inotifywait >/dev/null; then
      # root's first act in $T/out is creating its temp file (the result comes in by rename)
      inotifywait -q -q -t $HANG_LIMIT -e create "$T/out" &
      inw=$!
      sleep 0.2 # the watch is set up within milliseconds; mpirun takes longer to start root
    fi
    timeout $HANG_LIMIT "$MPIRUN" -np $NP --oversubscribe "${run[@]}" >/dev/null 2>"$T/err.$part" &
    job=$!
    if [ $part = stopped ]; then
      who=$VICTIM
      wait_for $HANG_LIMIT victim_up && sleep_ms $((RANDOM * route_ms * 6 / 10 / 32767)) &&
        kill -STOP "$v" && sleep 2 && kill -KILL "$v" || bad "simulate $part: rank $VICTIM vanished"
    else
      who=0
      if wait_for $HANG_LIMIT root_up; then
        if [ -n "$inw" ]; then  # the watch was set before the job started: blocks until the create
          wait "$inw"
        else
          wait_for $HANG_LIMIT root_writing_or_done
        fi
        kill -KILL "$r" 2>/dev/null
      else
        bad "simulate $part: root never started"
      fi
      inw=""
    fi
    finish "simulate, rank $who killed ($part, round $round)" "$T/previous.json" "$OUT.ref" "$OUT" "$start"
    [ "$landed" = during ] && during=$((during + 1)) && break
  done
  [ $during -gt 0 ] && ok || bad "simulate $part: no kill landed before the write"
done

# ---- migrate ----
MAP=$DATA/move/map_g4_hier_4x16_r24.json
mig=("$EPLB" migrate --from initial --to "$MAP" --expert_bytes 2000000 --verify --write_map "$T/held.json")
start=$(date +%s%N)
reference "$T/held.json" "${mig[@]}"
run_ms=$((($(date +%s%N) - start) / 1000000))
echo "one migrate takes ${run_ms} ms"
echo '{"previous": "map"}' >"$T/previous_map.json"
during=0
for round in 1 2 3 4; do
  cp "$T/previous_map.json" "$T/held.json"
  start=$(date +%s)
  timeout $HANG_LIMIT "$MPIRUN" -np $NP --oversubscribe "${mig[@]}" >/dev/null 2>"$T/err.migrate" &
  job=$!
  if wait_for $HANG_LIMIT victim_up; then
    delay_ms=$((run_ms / 10 + RANDOM * run_ms * 3 / 10 / 32767)) # 10% to 40% of a run
    sleep_ms $delay_ms
    kill -KILL "$v" 2>/dev/null
    finish "migrate, rank $VICTIM killed after ${delay_ms} ms (round $round)" "$T/previous_map.json" \
      "$T/held.json.ref" "$T/held.json" "$start"
    [ "$landed" = during ] && during=$((during + 1))
  else
    bad "migrate: rank $VICTIM never started"
  fi
done
[ $during -gt 0 ] && ok || bad "migrate: no kill landed before the write"

echo "cli_kill_rank: $pass passed, $fail failed"
[ $fail -eq 0 ]

