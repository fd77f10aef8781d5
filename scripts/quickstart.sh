#!/usr/bin/env bash
# The main job: install what is needed, build, and run dsv3 end to end.
# Until training lands (issue 4) it creates a small random DeepSeek-V3-architecture
# checkpoint (MLA, MoE with aux-free routing, MTP) and computes its logits both by
# prefill and token by token through the latent KV cache.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build
cmake --build build -j"$(nproc)" --target dsv3

model=runs/quickstart/model
[ -f "$model/config.json" ] || ./build/dsv3 init --preset small --out "$model"
ids="0 17 4242 99 1000 7 3 512 2048 8191 5 6"
./build/dsv3 logits -m "$model" --ids "$ids" -o runs/quickstart/logits.npy --mtp runs/quickstart/mtp_logits.npy
./build/dsv3 logits -m "$model" --ids "$ids" -o runs/quickstart/logits_incremental.npy --incremental
