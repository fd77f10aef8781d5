#!/usr/bin/env bash
# What dsv3 train learns on a tiny model: the loss falls well below the unigram entropy of
# the data, the trained model's MTP drafts are accepted (speculative decoding prints what
# plain decoding prints), and aux-free balancing lowers MaxVio where `none` does not.
# 550 training steps: labelled `long`, left out of the sanitizer pass (train_cli.sh's short
# runs take the trainer through the sanitizers).
#   usage: train_learning.sh PATH_TO_DSV3 WORK_DIR
source "$(dirname "$0")/train_env.sh" "$@"

# 1. Learning: 150 steps.
"$dsv3" train "${common[@]}" --out "$work/learn" --steps 150 --save-every 0 2>"$work/learn.log"
loss_first=$($py -c "import json;print(json.loads(open('$work/learn/metrics.jsonl').readline())['loss'])")
loss_last=$($py -c "import json;l=[json.loads(x) for x in open('$work/learn/metrics.jsonl')];print(sum(x['loss'] for x in l[-10:])/10)")
unigram=$("$dsv3" tokenize -m "$work/learn/tokenizer" --no-bos --file "$work/data/text.txt" | $py -c "
import sys, math, collections
ids = sys.stdin.read().split(); c = collections.Counter(ids); n = len(ids)
print(-sum(v / n * math.log(v / n) for v in c.values()))")
echo "loss: first step $loss_first, mean of the last 10 steps $loss_last, unigram entropy $unigram"
$py -c "import sys; sys.exit(0 if $loss_last < 0.5 * $unigram else 1)" || { echo "FAIL: the loss did not fall well below the unigram entropy"; exit 1; }

# Plots of that run (gnuplot).
"$dsv3" plot "$work/learn" 2>/dev/null
for png in loss maxvio expert_load_0; do
  [ -s "$work/learn/plots/$png.png" ] || { echo "FAIL: dsv3 plot wrote no $png.png"; exit 1; }
done

# Generation from the trained model: greedy MTP speculative decoding (1 and 2 drafts)
# prints exactly what plain decoding prints, and most drafts are accepted.
for prompt in "the" "and the lord said" "in the beginning"; do
  "$dsv3" generate -m "$work/learn/latest" -p "$prompt" -n 60 --temp 0 --speculative none -t 2 >"$work/plain.txt"
  for drafts in 1 2; do
    "$dsv3" generate -m "$work/learn/latest" -p "$prompt" -n 60 --temp 0 --draft $drafts -t 2 --stats \
      >"$work/spec.txt" 2>"$work/spec.log"
    cmp -s "$work/plain.txt" "$work/spec.txt" ||
      { echo "FAIL: speculative output differs for '$prompt', $drafts drafts"; diff "$work/plain.txt" "$work/spec.txt"; exit 1; }
  done
done
grep -q "acceptance" "$work/spec.log" || { echo "FAIL: no acceptance in --stats"; cat "$work/spec.log"; exit 1; }
"$dsv3" bench -m "$work/learn/latest" -p 32 -n 32 --repeats 1 --json --roofline -t 2 \
  --prompt "the lord said unto moses and aaron speak unto the children of israel" >"$work/bench.json"
$py - "$work/bench.json" "$work/config.json" <<'PY'
import json, sys
b, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for key in ("prefill_tok_s", "decode_tok_s", "threads", "weights_dtype", "mtp_acceptance", "verify_over_one_token_step"):
    assert key in b, key
for key in ("read_bandwidth_gb_s", "fma_peak_gflop_s", "decode_fraction_of_floor", "prefill_fraction_of_floor"):
    assert b[key] > 0, (key, b)
assert b["kv_cache_bytes_per_token"] == (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * c["num_hidden_layers"] * 4, b
print("bench: MTP acceptance %.2f, decode %.0f tok/s (%.0f without speculation)" % (
    b["mtp_acceptance"], b["decode_tok_s"], b["decode_tok_s_no_speculation"]))
# A 150-step tiny model: the MTP module's acceptance on text like its data varies with the
# seed and with the last bit of the gradients (0.25-0.67 seen), always far above the chance of
# an untrained module (1/320): the bar is 30x chance.
assert b["mtp_acceptance"] > 0.1, b
PY
# A scripted chat: two turns, /reset, a third, /exit: three replies (--stats: a line each),
# the first two turns' prompts growing with the history, the third back to a short one.
printf 'the lord\nand he said\n/reset\nthe lord\n/exit\nnever read\n' |
  "$dsv3" chat -m "$work/learn/latest" -n 20 --temp 0 -t 2 --stats >"$work/chat.txt" 2>"$work/chat.log"
$py - "$work/chat.log" <<'PY'
import re, sys
prompts = [int(m) for m in re.findall(r"^\((\d+) prompt tokens", open(sys.argv[1]).read(), re.M)]
assert len(prompts) == 3 and prompts[1] > prompts[0] + 20 and prompts[2] == prompts[0], prompts
PY

# 2. Auxiliary-loss-free balancing brings MaxVio down over the run; without it the
#    routing stays unbalanced (same data, seed and steps).
for balance in aux-free none; do
  "$dsv3" train "${common[@]}" --out "$work/balance-$balance" --steps 200 --save-every 0 --balance $balance 2>/dev/null
done
$py - "$work/balance-aux-free/metrics.jsonl" "$work/balance-none/metrics.jsonl" <<'PY'
import json, sys
def maxvio(path, part):
    log = [json.loads(l) for l in open(path)]
    rows = log[:40] if part == "first" else log[-40:]
    return sum(r["maxvio"] for r in rows) / len(rows)
free_start, free_end = maxvio(sys.argv[1], "first"), maxvio(sys.argv[1], "last")
none_end = maxvio(sys.argv[2], "last")
print("MaxVio, mean of 40 steps: aux-free %.3f -> %.3f, none at the end %.3f" % (free_start, free_end, none_end))
assert free_end < 0.25 * free_start and free_end < 0.5 * none_end, "aux-free balancing did not balance"
PY

echo "2 passed, 0 failed"
