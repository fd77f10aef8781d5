#!/usr/bin/env bash
# dsv3 serve against the official OpenAI Node client (npm `openai`, test-only): completions
# and chat, streaming or not, usage and finish_reason, greedy output equal to
# `dsv3 generate --temp 0`, 16 concurrent streams equal to each run alone, bad requests,
# API keys, a client that disconnects, a saturated server, and SIGTERM mid-stream.
#   usage: serve_test.sh PATH_TO_DSV3 WORK_DIR
set -euo pipefail
dsv3=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
bash "$here/../npm_install.sh" "$here"
py=/usr/bin/python3

# A tiny model trained for a few seconds (it has an MTP module and a tokenizer with the
# DeepSeek-V3 chat template), on text with a clear structure so that outputs are words.
bash "$here/../train/tiny_corpus.sh" "$work"
"$dsv3" train --data "$work/data" --config "$work/config.json" --batch 4 --seq-len 48 --lr 1e-2 --warmup 10 \
  --init-std 0.02 --eval-every 0 -t 2 --steps 80 --save-every 0 --out "$work/run" 2>"$work/train.log"
model="$work/run/latest"

# What the API must reproduce: greedy `dsv3 generate` (its text ends with one newline).
$py - "$dsv3" "$model" "$work/expected.json" <<'PY'
import json, subprocess, sys
dsv3, model, out = sys.argv[1:]
def generate(prompt, n, chat=False):
    cmd = [dsv3, "generate", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "1"] + (["--chat"] if chat else [])
    text = subprocess.run(cmd, check=True, capture_output=True).stdout.decode()
    assert text.endswith("\n")
    return text[:-1]
def count(prompt, chat=False):
    cmd = [dsv3, "tokenize", "-m", model, prompt] + (["--chat"] if chat else [])
    return len(subprocess.run(cmd, check=True, capture_output=True).stdout.split())
prompts = ["the lord", "moses and", "speak unto the", "children of israel", "aaron"]
json.dump({
    "completions": [{"prompt": p, "text": generate(p, 24), "prompt_tokens": count(p)} for p in prompts],
    "chat": [{"content": p, "text": generate(p, 24, True), "prompt_tokens": count(p, True)} for p in prompts[:3]],
}, open(out, "w"))
PY

# start_server LOG ARGS...: starts dsv3 serve on a free port; sets server_pid and port.
start_server() {
  local log=$1
  shift
  "$dsv3" serve -m "$model" --port 0 -t 2 "$@" 2>"$log" &
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: the server did not start:"; cat "$log"; exit 1
}

start_server "$work/main.log" --parallel 16 --ctx 512 --api-key test-key
main_pid=$server_pid
main_url="http://127.0.0.1:$port"
start_server "$work/single.log" --parallel 1 --queue 0 --ctx 4096
single_pid=$server_pid
single_url="http://127.0.0.1:$port"
trap 'kill $main_pid $single_pid 2>/dev/null || true' EXIT

status=0
# A second server on a port in use is an error, not a silent sharing of the port.
if "$dsv3" serve -m "$model" --port "${main_url##*:}" 2>"$work/second.log"; then
  echo "FAIL: a second server started on a port in use"; status=1
elif ! grep -q "dsv3: error: cannot listen" "$work/second.log"; then
  echo "FAIL: second server's error:"; cat "$work/second.log"; status=1
fi
node "$here/client_test.mjs" "$main_url" test-key "$single_url" "$work/expected.json" || status=1

# SIGTERM with streams in flight: each ends with an error event, the server exits 0 soon.
node "$here/sigterm_client.mjs" "$single_url" >"$work/sigterm.out" 2>&1 &
client_pid=$!
for _ in $(seq 100); do grep -q STREAMING "$work/sigterm.out" && break; sleep 0.05; done
kill -TERM "$single_pid"
start=$(date +%s)
if wait "$single_pid"; then server_rc=0; else server_rc=$?; fi
elapsed=$(($(date +%s) - start))
wait "$client_pid" || true
cat "$work/sigterm.out"
if [ "$server_rc" -ne 0 ] || [ "$elapsed" -gt 5 ] || ! grep -q "ENDED_WITH_ERROR" "$work/sigterm.out"; then
  echo "FAIL sigterm: server exit $server_rc after ${elapsed}s"; cat "$work/single.log"; status=1
else
  echo "ok sigterm: the stream ended with an error event, the server exited 0 in ${elapsed}s"
fi
kill -0 "$main_pid" || { echo "FAIL: the main server died"; cat "$work/main.log"; status=1; }
exit $status
