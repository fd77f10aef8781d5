#!/usr/bin/env bash
# Measures `dsv3 logits` on a generated ~0.55B-parameter DeepSeek-V3-architecture checkpoint:
# wall time for a 128-token prefill and 128 incremental steps with 1 and 2 threads (median of
# 3 runs) and the peak RSS against the checkpoint's file size.
#   bench/logits.sh [bf16|fp8]     (builds first; the checkpoint is cached under runs/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
dtype=${1:-bf16}
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null

model=runs/bench/model-0.5b-$dtype
[ -f "$model/config.json" ] || ./build/dsv3 init --preset 0.5b --dtype "$dtype" --out "$model"
file_mb=$(( $(stat -c %s "$model/model.safetensors") / 1048576 ))
ids=$(seq 1 128 | tr '\n' ' ')

median() { sort -n | sed -n 2p; }
echo "checkpoint: $model ($file_mb MiB, $dtype weights)"
printf '%-12s %-8s %-10s %-10s %-12s\n' mode threads median_s tok_per_s peak_rss_MiB
for mode in prefill incremental; do
  flag=""; [ "$mode" = incremental ] && flag="--incremental"
  for threads in 1 2; do
    times=(); rss=0
    for run in 1 2 3; do
      /usr/bin/time -o runs/bench/time.txt -f "%e %M" ./build/dsv3 logits -m "$model" --ids "$ids" \
        -o runs/bench/logits.npy -t "$threads" $flag 2>/dev/null
      out=$(tail -1 runs/bench/time.txt)
      times+=("${out% *}"); kb=${out#* }; [ "$kb" -gt "$rss" ] && rss=$kb
    done
    t=$(printf '%s\n' "${times[@]}" | median)
    printf '%-12s %-8s %-10s %-10s %-12s\n' "$mode" "$threads" "$t" "$(echo "128 / $t" | bc -l | cut -c1-6)" "$((rss / 1024))"
  done
done
