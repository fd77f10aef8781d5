#!/usr/bin/env bash
# Parallel training on this machine (mpirun, 4 ranks): step time of the default small model
# (4 layers, the KJV) cut into 4 pipeline stages under 1F1B and under DualPipe, next to one
# process; data parallelism on 2 ranks with the gradient sum overlapped with the last backward
# and after it; and the bytes the expert exchanges move per step with 4 expert ranks for FP32,
# BF16 and FP8 training (FP8: E4M3 dispatch, BF16 combine). Medians over the steps after the first two.
#   bench/parallel.sh [STEPS] [BATCH]      (default 10 steps of 8 x 128 tokens)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
batch=${2:-8}
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null
source tests/dist/mpi_env.sh
out=runs/bench/parallel
rm -rf $out/runs && mkdir -p $out/data $out/runs
[ -f $out/data/kjv.txt ] || bible 'Gen1:1-Rev22:21' >$out/data/kjv.txt
[ -f $out/tokenizer/tokenizer.json ] || ./build/dsv3 tokenizer-train --data $out/data --vocab-size 8192 -o $out/tokenizer
common=(--data $out/data --tokenizer $out/tokenizer --steps "$steps" --batch "$batch" --seq-len 128 --eval-every 0
        --save-every 0 --seed 1 -t 1)

./build/dsv3 train "${common[@]}" --out $out/runs/one 2>/dev/null
for schedule in 1f1b dualpipe; do
  mpi 4 ./build/dsv3 train "${common[@]}" --pp 4 --schedule $schedule --out $out/runs/$schedule 2>/dev/null
done
for grad_reduce in after overlap; do
  mpi 2 ./build/dsv3 train "${common[@]}" --grad-reduce $grad_reduce --out $out/runs/dp_$grad_reduce 2>/dev/null
done
for precision in fp32 bf16 fp8; do
  mpi 4 ./build/dsv3 train "${common[@]}" --ep 4 --precision $precision --out $out/runs/ep_$precision 2>/dev/null
done

/usr/bin/python3 - $out/runs "$batch" <<'PY'
import json, statistics, sys
runs, batch = sys.argv[1], int(sys.argv[2])
def log(run):
    return [json.loads(line) for line in open(f"{runs}/{run}/metrics.jsonl")]
def step_seconds(run):
    return statistics.median(batch * 128 / e["tokens_per_s"] for e in log(run)[2:])
print("| run | ranks | median step s | tokens/s | final loss |")
print("|---|---|---|---|---|")
for run, ranks in (("one", 1), ("1f1b", 4), ("dualpipe", 4), ("dp_after", 2), ("dp_overlap", 2), ("ep_fp32", 4)):
    s = step_seconds(run)
    print(f"| {run} | {ranks} | {s:.3f} | {batch * 128 / s:.0f} | {log(run)[-1]['loss']:.4f} |")
print()
print("| precision | expert exchange MB per step (4 ranks, forward + backward) |")
print("|---|---|")
for precision in ("fp32", "bf16", "fp8"):
    print(f"| {precision} | {statistics.median(e['dispatch_bytes'] for e in log('ep_' + precision)) / 1e6:.2f} |")
PY
