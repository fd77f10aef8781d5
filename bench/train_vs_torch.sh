#!/usr/bin/env bash
# Training throughput of the default small model: dsv3 against a PyTorch implementation of
# the same model and step (bench/train_torch.py), measured in the same run on the same
# threads. Median tokens/s over steps 2..N.
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
theirs=$(/usr/bin/python3 bench/train_torch.py $out/model "$steps" 8 128 "$threads")
printf '%-10s %12s\n' engine tokens/s
printf '%-10s %12s\n' dsv3 "$ours" pytorch "$theirs"
echo "ratio dsv3/pytorch: $(echo "$ours / $theirs" | bc -l | cut -c1-5)"
