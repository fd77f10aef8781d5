#!/usr/bin/env bash
# A rank that dies (SIGKILL) or hangs (SIGSTOP) in the middle of 2-rank training ends the whole
# job with a non-zero exit and a message in bounded time, and the last checkpoint still loads.
#   usage: rank_failure.sh PATH_TO_DSV3 WORK_DIR
set -euo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
source "$(dirname "$0")/mpi_env.sh"

tiny_training_setup "$dsv3" "$work"
common=(--data "$work/data" --config "$work/config.json" --tokenizer "$work/tokenizer" --batch 4 --seq-len 48
        --eval-every 0 --save-every 3 --steps 100000 -t 1)

# Starts a 2-rank run in the background, waits until it has logged 7 steps (so checkpoints
# exist and it is mid-training), then does `kill -$1` to one rank and times the job's end.
fail_one_rank() {
  local signal=$1 out=$work/$2 timeout=$3
  mpi 2 "$dsv3" train "${common[@]}" --out "$out" --dist-timeout "$timeout" 2>"$out.log" &
  local job=$!
  for _ in $(seq 600); do
    [ -f "$out/metrics.jsonl" ] && [ "$(wc -l <"$out/metrics.jsonl")" -ge 7 ] && break
    sleep 0.1
  done
  local rank_pid
  rank_pid=$(pgrep -f -- "--out $out" | grep -v "^$job\$" | while read -r p; do
    [ "$(ps -o comm= -p "$p")" = dsv3 ] && echo "$p"; done | tail -n 1)
  [ -n "$rank_pid" ] || { echo "FAIL: no rank process found"; kill -9 $job; exit 1; }
  local start=$SECONDS rc=0
  kill "-$signal" "$rank_pid"
  # Bounded: give the job 60 s to end on its own, then count it as a hang.
  for _ in $(seq 600); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  if kill -0 $job 2>/dev/null; then
    echo "FAIL: the job still runs 60 s after SIG$signal to one rank"; kill -9 $job "$rank_pid"; exit 1
  fi
  wait $job || rc=$?
  kill -9 "$rank_pid" 2>/dev/null || true
  echo "SIG$signal to one rank: the job ended after $((SECONDS - start)) s with exit code $rc"
  [ $rc -ne 0 ] || { echo "FAIL: exit code 0"; cat "$out.log"; exit 1; }
  "$dsv3" logits -m "$out/latest" --ids "1 2 3" -o "$out.npy" -t 1 ||
    { echo "FAIL: the last checkpoint does not load"; exit 1; }
}

fail_one_rank KILL killed 60
fail_one_rank STOP stopped 5
grep -q "no answer from the other ranks after 5 s" "$work/stopped.log" ||
  { echo "FAIL: no timeout message"; cat "$work/stopped.log"; exit 1; }
echo "rank failure: OK"
