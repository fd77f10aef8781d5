#!/usr/bin/env bash
# Expert-parallel inference under mpirun: `dsv3 logits --ep N` on 2 and 4 ranks gives the
# logits of one process (main model and MTP module, BF16 and FP8 weights), greedy
# `dsv3 generate --ep 2` prints the same text, `dsv3 serve --ep 2` serves concurrent requests
# with it, and --ep without mpirun is a clear error.
#   usage: expert_parallel_inference.sh PATH_TO_DSV3 WORK_DIR
set -euo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
py=/usr/bin/python3
source "$(dirname "$0")/mpi_env.sh"

ids="0 5 9 17 33 65 129 200 7 3 250 11 40 41 42 43"
for dtype in bf16 fp8; do
  "$dsv3" init --preset tiny --dtype $dtype --std 0.1 --seed 5 -o "$work/$dtype" 2>/dev/null
  "$dsv3" logits -m "$work/$dtype" --ids "$ids" -o "$work/$dtype.1.npy" --mtp "$work/$dtype.1.mtp.npy" -t 1 2>/dev/null
  for ranks in 2 4; do
    mpi $ranks "$dsv3" logits -m "$work/$dtype" --ids "$ids" -o "$work/$dtype.$ranks.npy" \
      --mtp "$work/$dtype.$ranks.mtp.npy" --ep $ranks -t 1 2>"$work/$dtype.$ranks.log" ||
      { echo "FAIL: logits --ep $ranks"; cat "$work/$dtype.$ranks.log"; exit 1; }
  done
done
$py - "$work" <<'PY'
import sys, numpy as np
work = sys.argv[1]
# The shards' partial sums of the routed experts are added in another order than one
# process adds the experts: FP32 rounding, ~1e-7 relative per layer, nothing more.
for dtype in ("bf16", "fp8"):
    for part in ("", ".mtp"):
        ref = np.load(f"{work}/{dtype}.1{part}.npy")
        for ranks in (2, 4):
            got = np.load(f"{work}/{dtype}.{ranks}{part}.npy")
            assert got.shape == ref.shape, (got.shape, ref.shape)
            diff = np.abs(got - ref).max() / np.abs(ref).max()
            print(f"{dtype}{part} --ep {ranks}: max difference {diff:.1e} of the largest logit")
            assert diff < 1e-5, diff
print("expert parallel logits: OK")
PY

# Greedy generation: the same text (the tokenizer of a tiny corpus model; random weights).
bash "$(dirname "$0")/../train/tiny_corpus.sh" "$work/corpus"
"$dsv3" train --data "$work/corpus/data" --config "$work/corpus/config.json" --out "$work/run" --steps 20 \
  --batch 2 --seq-len 32 --eval-every 0 -t 1 2>/dev/null
"$dsv3" generate -m "$work/run/latest" -p "the lord" -n 24 --temp 0 -t 1 >"$work/one.txt"
mpi 2 "$dsv3" generate -m "$work/run/latest" -p "the lord" -n 24 --temp 0 --ep 2 -t 1 >"$work/two.txt" \
  2>"$work/two.log" || { echo "FAIL: generate --ep 2"; cat "$work/two.log"; exit 1; }
cmp "$work/one.txt" "$work/two.txt" || { echo "FAIL: generate --ep 2 printed other text"; exit 1; }

# dsv3 serve --ep 2: rank 0 serves HTTP, rank 1 follows its steps; 4 concurrent greedy and
# seeded completions (continuously batched) get the answers one process's server gives, and
# SIGTERM stops both ranks.
server=""
trap '[ -n "$server" ] && kill -9 $server 2>/dev/null' EXIT
# serve_and_query OUT RANKS: starts the server (on RANKS ranks with --ep RANKS), sends the
# requests, writes the answers to OUT (JSON), stops it with SIGTERM and checks it exits 0.
serve_and_query() {
  local out=$1 ranks=$2
  local args=(serve -m "$work/run/latest" --port 0 --parallel 4 -t 1)
  if [ "$ranks" -eq 1 ]; then
    "$dsv3" "${args[@]}" 2>"$out.log" &
  else
    "${mpirun_command[@]}" -np "$ranks" "$dsv3" "${args[@]}" --ep "$ranks" 2>"$out.log" &  # $! is mpirun
  fi
  server=$!
  local port=""
  for _ in $(seq 300); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$out.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL: the server on $ranks rank(s) did not start"; cat "$out.log"; exit 1; }
  $py - "$port" "$out" <<'PY'
import json, sys, threading, urllib.request
port, out = sys.argv[1], sys.argv[2]
requests = [{"prompt": p, "max_tokens": 16, "temperature": t, "seed": 7}
            for p, t in (("the lord", 0), ("and aaron", 0), ("speak unto the", 1), ("the children of", 1))]
answers = [None] * len(requests)
def complete(i):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", json.dumps(requests[i]).encode(),
                                     {"Content-Type": "application/json"})
    answers[i] = json.load(urllib.request.urlopen(request, timeout=60))["choices"][0]["text"]
threads = [threading.Thread(target=complete, args=(i,)) for i in range(len(requests))]
for t in threads: t.start()
for t in threads: t.join()
json.dump(answers, open(out, "w"))
PY
  # SIGTERM to rank 0 (under mpirun: the process whose environment says rank 0), which stops
  # serving and tells the followers to stop: every process then exits 0.
  local target=$server
  for pid in $(pgrep -P "$server"); do
    tr '\0' '\n' <"/proc/$pid/environ" | grep -qx 'OMPI_COMM_WORLD_RANK=0' && target=$pid
  done
  kill -TERM "$target"
  local rc=0
  wait $server || rc=$?
  server=""
  [ $rc -eq 0 ] || { echo "FAIL: the server on $ranks rank(s) exited $rc after SIGTERM"; cat "$out.log"; exit 1; }
}
serve_and_query "$work/answers1.json" 1
serve_and_query "$work/answers2.json" 2
cmp "$work/answers1.json" "$work/answers2.json" ||
  { echo "FAIL: serve --ep 2 answered otherwise"; cat "$work/answers1.json" "$work/answers2.json"; exit 1; }
echo "serve --ep 2: 4 concurrent completions as one process answers them"

# Without mpirun, --ep 2 is a one-line error.
if "$dsv3" logits -m "$work/bf16" --ids "1 2" -o "$work/x.npy" --ep 2 2>"$work/err.txt"; then
  echo "FAIL: --ep 2 without mpirun succeeded"; exit 1
fi
grep -q "must equal the number of ranks (1; start with mpirun" "$work/err.txt" || { cat "$work/err.txt"; exit 1; }
echo "expert parallel inference: OK"
