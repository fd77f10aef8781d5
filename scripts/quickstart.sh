#!/usr/bin/env bash
# The main job: install what is needed, build, and run `dsv3 quickstart`: the King James
# Bible from Debian's packages -> a trained tokenizer -> a small DeepSeek-V3-architecture
# model (MLA, MoE with group-limited aux-free routing, MTP) trained for about five minutes
# on 2 cores -> a generated sample. Everything goes to runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build
cmake --build build -j"$(nproc)" --target dsv3
./build/dsv3 quickstart
