#!/usr/bin/env bash
# Training throughput of the default small model: dsv3 against PyTorch implementations of
# the same model and step (bench/train_torch.py: batched, and one sequence at a time),
# measured in the same run on the same threads. Median tokens/s over steps 2..N. Also the
# achieved FLOP/s (training FLOPs per token x tokens/s) against this machine's FP32 peak,
# measured by bench/fma_peak.c, and PyTorch's own sgemm rate on 2048 x 2048 matrices
# (Debian's python3-torch links a generic BLAS: that explains much of its slowness).
#   bench/train_vs_torch.sh [STEPS] [THREADS]       (default 6 steps of 8 x 128 tokens, 2 threads)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-6}
threads=${2:-$(nproc)}
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null
out=runs/bench/train_vs_torch
mkdir -p $out/data
[ -f $out/data/kjv.txt ] || bible 'Gen1:1-Rev22:21' >$out/data/kjv.txt
[ -f $out/model/config.json ] || ./build/dsv3 init --preset small --std 0.02 -o $out/model
[ -f $out/tokenizer/tokenizer.json ] || ./build/dsv3 tokenizer-train --data $out/data --vocab-size 8192 -o $out/tokenizer

rm -rf $out/run
./build/dsv3 train --data $out/data --tokenizer $out/tokenizer --config $out/model/config.json --steps "$steps" \
  --batch 8 --seq-len 128 --eval-every 0 --save-every 0 -t "$threads" --out $out/run 2>/dev/null
ours=$(/usr/bin/python3 -c "
import json, statistics
rates = [json.loads(l)['tokens_per_s'] for l in open('$out/run/metrics.jsonl')]
print('%.1f' % statistics.median(rates[1:]))")
batched=$(/usr/bin/python3 bench/train_torch.py $out/model "$steps" 8 128 "$threads" batched)
unbatched=$(/usr/bin/python3 bench/train_torch.py $out/model "$steps" 8 128 "$threads" unbatched)
printf '%-20s %12s %10s\n' engine tokens/s dsv3/it
printf '%-20s %12s\n' dsv3 "$ours"
printf '%-20s %12s %10.2f\n' "pytorch batched" "$batched" "$(echo "$ours / $batched" | bc -l)"
printf '%-20s %12s %10.2f\n' "pytorch unbatched" "$unbatched" "$(echo "$ours / $unbatched" | bc -l)"
cc -O2 -march=native -fopenmp bench/fma_peak.c -o build/fma_peak
peak=$(./build/fma_peak "$threads")
/usr/bin/python3 - $out/model/config.json "$ours" "$threads" "$peak" <<'PY'
import json, sys, time, torch
c, rate, threads, peak = json.load(open(sys.argv[1])), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) * 1e9
d, H, T = c["hidden_size"], c["num_attention_heads"], 128
qk, vd = c["qk_nope_head_dim"] + c["qk_rope_head_dim"], c["v_head_dim"]
q = d * c["q_lora_rank"] + c["q_lora_rank"] * H * qk if c.get("q_lora_rank") else d * H * qk
attn = q + d * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) + c["kv_lora_rank"] * H * (c["qk_nope_head_dim"] + vd) + H * vd * d
expert = 3 * d * c["moe_intermediate_size"]
moe = (c["num_experts_per_tok"] + c.get("n_shared_experts", 0)) * expert + d * c["n_routed_experts"]
dense = 3 * d * c["intermediate_size"]
k = c.get("first_k_dense_replace", 0)
per_token = c["num_hidden_layers"] * attn + k * dense + (c["num_hidden_layers"] - k) * moe
per_token += attn + moe + 2 * d * d        # the MTP block and eh_proj
per_token += 2 * d * c["vocab_size"]       # main and MTP heads
core = (c["num_hidden_layers"] + 1) * H * T * (qk + vd)  # causal attention: ~T/2 keys x 2 products
flops = 6 * (per_token + core)             # forward 2, backward 4 per multiply-add
torch.set_num_threads(threads)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
a @ b
runs = []
for _ in range(5):
    start = time.perf_counter(); a @ b; runs.append(time.perf_counter() - start)
sgemm = 2 * 2048 ** 3 / sorted(runs)[2]
print("training FLOPs per token %.1f M; dsv3 %.1f GFLOP/s = %.0f %% of the FP32 FMA peak %.1f GFLOP/s (%d threads);"
      " PyTorch sgemm %.1f GFLOP/s" % (flops / 1e6, flops * rate / 1e9, 100 * flops * rate / peak, peak / 1e9, threads,
                                        sgemm / 1e9))
PY
