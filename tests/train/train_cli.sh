#!/usr/bin/env bash
# dsv3 train end to end on a tiny model: a resumed run continues bit-exactly (same losses,
# same weights), the checkpoint loads in the inference engine, a run killed at any moment
# keeps a loadable checkpoint, and non-finite gradients skip updates. (What the training
# learns is train_learning.sh.)
#   usage: train_cli.sh PATH_TO_DSV3 WORK_DIR
source "$(dirname "$0")/train_env.sh" "$@"

# 1. Resume: 8 steps straight vs 4 + 4 resumed.
"$dsv3" train "${common[@]}" --out "$work/straight" --steps 8 --save-every 4 2>/dev/null
"$dsv3" train "${common[@]}" --out "$work/resumed" --steps 4 --save-every 4 2>/dev/null
"$dsv3" train "${common[@]}" --out "$work/resumed" --steps 8 --save-every 4 --resume 2>/dev/null
$py - "$work/straight/metrics.jsonl" "$work/resumed/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
keys = ("step", "loss", "mtp_loss", "maxvio", "grad_norm", "lr")
assert len(a) == len(b) == 8, (len(a), len(b))
for x, y in zip(a, b):
    assert all(x[k] == y[k] for k in keys), (x, y)
print("resume: 8 steps identical")
PY
cmp "$work/straight/latest/model.safetensors" "$work/resumed/latest/model.safetensors"
cmp "$work/straight/latest/optimizer.safetensors" "$work/resumed/latest/optimizer.safetensors"

# 2. The checkpoint is a model directory every command loads.
"$dsv3" logits -m "$work/resumed/latest" --ids "0 5 9 12" -o "$work/logits.npy" --mtp "$work/mtp.npy" 2>/dev/null

# 3. Killed at any moment, even while saving, a run keeps a loadable checkpoint and resumes.
"$dsv3" train "${common[@]}" --out "$work/killed" --steps 1 --save-every 1 2>/dev/null
for attempt in 1 2 3 4 5 6; do
  "$dsv3" train "${common[@]}" --out "$work/killed" --steps 100000 --save-every 1 --resume 2>/dev/null &
  pid=$!
  sleep "0.$((attempt * 13 % 10))$attempt"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  "$dsv3" logits -m "$work/killed/latest" --ids "0 5 9" -o "$work/killed.npy" 2>/dev/null ||
    { echo "FAIL: the checkpoint is not loadable after a kill (attempt $attempt)"; exit 1; }
done
"$dsv3" train "${common[@]}" --out "$work/killed" --steps 1 --resume 2>/dev/null
echo "killed 6 times: latest stayed loadable and the run resumed"

# 4. A gradient that is not finite (here every one: weights of std 1e30 overflow the forward)
#    skips its update; five in a row stop the run with an error naming the steps.
if "$dsv3" train "${common[@]/0.02/1e30}" --out "$work/overflow" --steps 20 --save-every 0 2>"$work/overflow.log"; then
  echo "FAIL: a run of non-finite gradients did not stop"; exit 1
fi
grep -q "not finite in 5 steps in a row (steps 1-5" "$work/overflow.log" || { cat "$work/overflow.log"; exit 1; }
[ "$(grep -c '"skipped":true' "$work/overflow/metrics.jsonl")" = 5 ] || { echo "FAIL: skipped steps not logged"; exit 1; }
echo "4 passed, 0 failed"
