#!/usr/bin/env bash
# Pipeline parallelism under mpirun: 50 steps of a 4-layer tiny model cut into 2 and 4 stages,
# scheduled by 1F1B and by DualPipe (8 micro-batches of one sequence), give the weights, expert
# loads and (to FP64 rounding) losses of one process with the same batch.
#   usage: pipeline_training.sh PATH_TO_DSV3 WORK_DIR
set -euo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
py=/usr/bin/python3
source "$(dirname "$0")/mpi_env.sh"

tiny_training_setup "$dsv3" "$work" 4
common=(--data "$work/data" --config "$work/config.json" --tokenizer "$work/tokenizer" --batch 8 --seq-len 32
        --lr 1e-2 --warmup 10 --init-std 0.02 --eval-every 25 --save-every 0 --steps 50 -t 1 --dist-timeout 120)

"$dsv3" train "${common[@]}" --out "$work/one" 2>"$work/one.log"
runs=(one)
for ranks in 2 4; do
  for schedule in 1f1b dualpipe; do
    run=$schedule$ranks
    mpi $ranks "$dsv3" train "${common[@]}" --pp $ranks --schedule $schedule --out "$work/$run" 2>"$work/$run.log" ||
      { echo "FAIL: --pp $ranks --schedule $schedule"; cat "$work/$run.log"; exit 1; }
    runs+=("$run")
  done
done
for run in "${runs[@]}"; do
  "$dsv3" logits -m "$work/$run/latest" --ids "0 5 9 17 33 65 129 200 7 3 250 11" -o "$work/$run.npy" -t 1 2>/dev/null
done

$py - "$work" "${runs[@]:1}" <<'PY'
import json, sys, numpy as np
work, runs = sys.argv[1], sys.argv[2:]
def log(run):
    return [json.loads(line) for line in open(f"{work}/{run}/metrics.jsonl")]
one = log("one")
assert len(one) == 50
# Each stage's gradient of each micro-batch is computed from zero and added into an FP64 sum
# (train/gradient_sum.h), so only the order of FP64 additions differs from one process: the
# weights come out identical and the logged losses differ by FP64 rounding.
tolerance = {"loss": 1e-12, "mtp_loss": 1e-12, "val_loss": 1e-12, "grad_norm": 1e-12}
ref = np.load(f"{work}/one.npy")
for run in runs:
    many = log(run)
    assert len(many) == 50, (run, len(many))
    for key, bound in tolerance.items():
        worst = max(abs(a[key] - b[key]) / abs(a[key]) for a, b in zip(one, many) if key in a)
        print(f"{run}: {key} differs from 1 process by at most {worst:.1e} (relative) over 50 steps")
        assert worst < bound, (run, key, worst)
    for a, b in zip(one, many):
        assert a["expert_load"] == b["expert_load"], ("expert loads differ", run, a["step"])
    diff = np.abs(np.load(f"{work}/{run}.npy") - ref).max() / np.abs(ref).max()
    print(f"{run}: logits of the final checkpoint vs 1 process: {diff:.1e}")
    assert diff == 0, (run, diff)
print("pipeline training: OK")
PY
