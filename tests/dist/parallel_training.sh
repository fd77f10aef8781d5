#!/usr/bin/env bash
# Data and expert parallelism under mpirun: 50 steps of a tiny model on 2 and 4 ranks, with and
# without sharded experts (--ep), FP32 and FP8, give the weights, expert loads and (to FP64
# rounding) losses of one process with the same global batch; a
# resumed 2-rank run continues bit-exactly; with 4 expert shards of one group each, no token
# reaches more than topk_group = 2 ranks.
#   usage: parallel_training.sh PATH_TO_DSV3 WORK_DIR
set -euo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
py=/usr/bin/python3
source "$(dirname "$0")/mpi_env.sh"

tiny_training_setup "$dsv3" "$work"
common=(--data "$work/data" --config "$work/config.json" --tokenizer "$work/tokenizer" --batch 4 --seq-len 48
        --lr 1e-2 --warmup 10 --init-std 0.02 --eval-every 25 --save-every 25 --steps 50 -t 1 --dist-timeout 120)

"$dsv3" train "${common[@]}" --out "$work/ranks1" 2>"$work/ranks1.log"
for ranks in 2 4; do
  mpi $ranks "$dsv3" train "${common[@]}" --out "$work/ranks$ranks" 2>"$work/ranks$ranks.log" ||
    { echo "FAIL: training on $ranks ranks"; cat "$work/ranks$ranks.log"; exit 1; }
  mpi $ranks "$dsv3" train "${common[@]}" --ep $ranks --out "$work/ep$ranks" 2>"$work/ep$ranks.log" ||
    { echo "FAIL: training on $ranks ranks with --ep $ranks"; cat "$work/ep$ranks.log"; exit 1; }
done
# FP8 training (E4M3 dispatch, BF16 combine) on one process and with the experts on 2 ranks.
"$dsv3" train "${common[@]}" --precision fp8 --out "$work/fp8" 2>"$work/fp8.log"
mpi 2 "$dsv3" train "${common[@]}" --precision fp8 --ep 2 --out "$work/fp8_ep2" 2>"$work/fp8_ep2.log" ||
  { echo "FAIL: FP8 training with --ep 2"; cat "$work/fp8_ep2.log"; exit 1; }

# Resume on 2 ranks from step 25 of another run: the same losses and weights, bit for bit.
mkdir -p "$work/resumed"
cp -r "$work/ranks2/step-000025" "$work/resumed/" && ln -s step-000025 "$work/resumed/latest"
head -n 25 "$work/ranks2/metrics.jsonl" >"$work/resumed/metrics.jsonl"
mpi 2 "$dsv3" train "${common[@]}" --out "$work/resumed" --resume 2>"$work/resumed.log" ||
  { echo "FAIL: resuming on 2 ranks"; cat "$work/resumed.log"; exit 1; }

ids="0 5 9 17 33 65 129 200 7 3 250 11"
for run in ranks1 ranks2 ranks4 ep2 ep4 resumed; do
  "$dsv3" logits -m "$work/$run/latest" --ids "$ids" -o "$work/$run.npy" -t 1
done

$py - "$work" <<'PY'
import json, sys, numpy as np
work = sys.argv[1]
def log(run):
    return [json.loads(line) for line in open(f"{work}/{run}/metrics.jsonl")]
assert len(log("ranks1")) == 50
# Every rank computes each sequence's gradient from zero in FP32 and adds it into an FP64 sum
# (train/gradient_sum.h), and an expert's owner runs it on each source rank's rows apart and
# adds each share into the sum on its own (the rows one process would give it for that
# sequence, so the same products and the same FP8 tiles). The split over ranks then only
# reorders FP64 additions: the FP32 gradient, hence the weights, come out identical, and the
# logged losses (FP64 sums of the ranks' shares) differ by a few FP64 ulp: 1e-12. FP8 training
# with its E4M3 dispatch and BF16 combine included.
exact = {"loss": 1e-12, "mtp_loss": 1e-12, "val_loss": 1e-12, "grad_norm": 1e-12}
for reference, run in (("ranks1", "ranks2"), ("ranks1", "ranks4"), ("ranks1", "ep2"), ("ranks1", "ep4"),
                       ("fp8", "fp8_ep2")):
    one, many = log(reference), log(run)
    assert len(many) == 50, (run, len(many))
    for key, bound in exact.items():
        worst = max(abs(a[key] - b[key]) / abs(a[key]) for a, b in zip(one, many) if key in a)
        print(f"{run}: {key} differs from one process by at most {worst:.1e} (relative) over 50 steps")
        assert worst < bound, (run, key, worst)
    for a, b in zip(one, many):
        assert a["expert_load"] == b["expert_load"], ("expert loads differ", run, a["step"])
    if "ep" in run:
        reach = max(e["max_ranks_per_token"] for e in many)
        sent = sum(e["dispatch_bytes"] for e in many) / len(many)
        print(f"{run}: dispatch + combine {sent / 1e6:.3f} MB per step, a token reached at most {reach:.0f} ranks")
        assert sent > 0 and 1 <= reach <= 2, (sent, reach)
fp8_bytes, f32_bytes = log("fp8_ep2")[0]["dispatch_bytes"], log("ep2")[0]["dispatch_bytes"]
print(f"first step, 2 expert ranks: {f32_bytes} bytes dispatched and combined with FP32 training, {fp8_bytes} "
      f"with FP8 (E4M3 dispatch, BF16 combine forward)")
assert fp8_bytes < f32_bytes
two, resumed = log("ranks2"), log("resumed")
assert [e["loss"] for e in two] == [e["loss"] for e in resumed], "resumed 2-rank run differs"
ref = np.load(f"{work}/ranks1.npy")
for run in ("ranks2", "ranks4", "ep2", "ep4", "resumed"):
    diff = np.abs(np.load(f"{work}/{run}.npy") - ref).max() / np.abs(ref).max()
    print(f"{run}: logits of the final checkpoint vs 1 rank: {diff:.2e}")
    assert diff == 0, (run, diff)
assert (np.load(f"{work}/resumed.npy") == np.load(f"{work}/ranks2.npy")).all()
print("parallel training: OK")
PY
