#!/usr/bin/env bash
# Serving throughput of dsv3 serve (continuous batching): aggregate decode tokens/s with 1,
# 4 and 16 concurrent streaming clients (greedy, 128 tokens per request, 4 requests per
# client), and p50/p99 time to first token, with MTP speculation and without.
#   bench/serve.sh [MODEL]     (default: the quickstart model, runs/quickstart/run/latest)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-runs/quickstart/run/latest}
[ -f "$model/config.json" ] || { echo "bench/serve.sh: no model at $model (run dsv3 quickstart first)"; exit 1; }
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null
mkdir -p runs/bench
log=runs/bench/serve.log
printf '%-11s %-8s %-9s %-10s %-14s %-12s %-12s\n' speculation clients requests tokens aggregate_tok/s ttft_p50_ms ttft_p99_ms
for speculative in mtp none; do
  ./build/dsv3 serve -m "$model" --port 0 --parallel 16 --ctx 1024 --speculative "$speculative" 2>"$log" &
  pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log"; exit 1; }
  node bench/serve_clients.mjs "http://127.0.0.1:$port" 2 1 16 >/dev/null  # warm-up: page faults, buffers
  for clients in 1 4 16; do
    node bench/serve_clients.mjs "http://127.0.0.1:$port" "$clients" 4 128 | /usr/bin/python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print('%-11s %-8d %-9d %-10d %-14.1f %-12.1f %-12.1f' % ('$speculative', r['clients'], r['requests'],
      r['completion_tokens'], r['aggregate_tok_s'], r['ttft_p50_ms'], r['ttft_p99_ms']))"
  done
  kill -TERM "$pid"
  wait "$pid" || true
done
