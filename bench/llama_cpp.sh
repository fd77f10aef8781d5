#!/usr/bin/env bash
# dsv3 against llama.cpp on the same weights, one engine after the other, 2 threads: a
# generated ~0.5B DeepSeek-V3-architecture checkpoint (dsv3 init --preset 0.5b, with a
# tokenizer trained on the KJV and the vocabulary sized to it, 8192: the preset's 32000-row
# BF16 head would be 27 % of the BF16 bytes, where DeepSeek-V3's is 2 %, and would cap FP8's
# decode gain at 1.57x), converted with `dsv3 convert --to gguf` to BF16 and Q8_0.
# llama-bench (-p 128 -n 64 -r 3) runs both GGUFs; dsv3 bench (-p 128 -n 64 --repeats 3
# --roofline) runs the same two files (also with --activations bf16: activations rounded to
# BF16, as llama.cpp does for BF16 weights; the Q8_0 file also with --activations q8,
# quantised to Q8_0 blocks as llama.cpp does for Q8_0 weights), the BF16 safetensors directory and its
# official-format FP8 conversion, the last two also with MTP speculation, FP8 also with
# --activations bf16, all of it in rounds. Prints one markdown table of medians over the
# rounds: the decode floor of each row is its active weight bytes per token over the read
# bandwidth dsv3 measured in its runs (llama.cpp rows take the floor of dsv3's row on the
# same file).
# llama.cpp is not built here: build it yourself (e.g. cmake -DLLAMA_BUILD_TOOLS=ON, target
# llama-bench) and point LLAMA_CPP_DIR at the build directory.
#   LLAMA_CPP_DIR=~/llama.cpp/build bench/llama_cpp.sh    (DSV3_BUILD_DIR: dsv3's, default build;
#   ROUNDS: rounds, default 3, about 70 s each here)
set -euo pipefail
cd "$(dirname "$0")/.."
llama_bench=""
for f in "${LLAMA_CPP_DIR:-/nonexistent}"/{bin/,}llama-bench; do [ -x "$f" ] && llama_bench=$f && break; done
if [ -z "$llama_bench" ]; then
  echo "bench/llama_cpp.sh: set LLAMA_CPP_DIR to a llama.cpp build directory with bin/llama-bench" \
    "(now: '${LLAMA_CPP_DIR:-unset}'); build it with cmake -DLLAMA_BUILD_TOOLS=ON --target llama-bench" >&2
  exit 1
fi
build=${DSV3_BUILD_DIR:-build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target dsv3 >/dev/null
dsv3=$build/dsv3

out=runs/bench/llama_cpp
mkdir -p $out/data $out/results
[ -f $out/data/kjv.txt ] || bible 'Gen1:1-Rev22:21' >$out/data/kjv.txt
[ -f $out/tokenizer/tokenizer.json ] || $dsv3 tokenizer-train --data $out/data --vocab-size 8192 -o $out/tokenizer
if [ ! -f $out/bf16/tokenizer.json ]; then
  rm -rf $out/bf16.tmp && $dsv3 init --preset 0.5b --vocab-size 8192 --dtype bf16 --seed 1 --out $out/bf16.tmp
  cp $out/tokenizer/tokenizer*.json $out/bf16.tmp/ && mv $out/bf16.tmp $out/bf16
fi
if [ ! -f $out/fp8/config.json ]; then  # the same weights in the official FP8 format
  rm -rf $out/fp8.tmp && $dsv3 convert -m $out/bf16 -o $out/fp8.tmp --to fp8 && mv $out/fp8.tmp $out/fp8
fi
mkdir -p $out/gguf && cp $out/tokenizer/tokenizer*.json $out/gguf/  # dsv3 reads it beside the file
for type in bf16 q8_0; do
  [ -f $out/gguf/$type.gguf ] || $dsv3 convert -m $out/bf16 -o $out/gguf/$type.gguf --to gguf --type $type
done

# ROUNDS rounds (default 3), each running every engine and weight file once: on a shared or
# noisy machine a single run moves by 20 % or more from one minute to the next, and rounds
# spread that over all rows alike; the table gives each number's median over the rounds.
# A llama.cpp build that fails on a file (some builds assert on a weight type) costs its rows, not the run.
rounds=${ROUNDS:-3}
rm -rf $out/results && mkdir -p $out/results
run_dsv3() {  # NAME MODEL SPECULATIVE [MORE OPTIONS], into this round's $dir
  echo "dsv3 bench $2 --speculative $3 ${*:4}" >&2
  $dsv3 bench -m "$2" -p 128 -n 64 --repeats 3 --speculative "$3" --json --roofline -t 2 "${@:4}" >$dir/dsv3-$1.json
}
for round in $(seq 1 "$rounds"); do
  dir=$out/results/round-$round && mkdir -p $dir
  echo "round $round of $rounds" >&2
  for type in bf16 q8_0; do
    echo "llama-bench $out/gguf/$type.gguf" >&2
    "$llama_bench" -m $out/gguf/$type.gguf -p 128 -n 64 -t 2 -r 3 -o json >$dir/llama-$type.json.tmp \
      2>$dir/llama-$type.log && mv $dir/llama-$type.json.tmp $dir/llama-$type.json ||
      echo "bench/llama_cpp.sh: llama-bench failed on $type.gguf; its log: $dir/llama-$type.log" >&2
  done
  run_dsv3 gguf-bf16 $out/gguf/bf16.gguf none
  run_dsv3 gguf-bf16-act $out/gguf/bf16.gguf none --activations bf16
  run_dsv3 gguf-q8_0 $out/gguf/q8_0.gguf none
  run_dsv3 gguf-q8_0-act $out/gguf/q8_0.gguf none --activations bf16
  run_dsv3 gguf-q8_0-q8 $out/gguf/q8_0.gguf none --activations q8
  run_dsv3 st-bf16 $out/bf16 none
  run_dsv3 st-bf16-mtp $out/bf16 mtp
  run_dsv3 st-fp8 $out/fp8 none
  run_dsv3 st-fp8-mtp $out/fp8 mtp
  run_dsv3 st-fp8-act $out/fp8 none --activations bf16
done

/usr/bin/python3 - $out/results <<'PY'
import glob, json, statistics, sys
rounds = sorted(glob.glob(sys.argv[1] + "/round-*"))
def medians(results):  # each numeric field's median over the rounds
    return {k: statistics.median(r[k] for r in results) if isinstance(v, (int, float)) else v
            for k, v in results[0].items()}
def dsv3(name): return medians([json.load(open("%s/dsv3-%s.json" % (d, name))) for d in rounds])
def llama_round(d, type):  # None where llama-bench failed: its log's last error or assertion says why
    try:
        runs = json.load(open("%s/llama-%s.json" % (d, type)))
    except FileNotFoundError:
        log = open("%s/llama-%s.log" % (d, type)).read().strip().splitlines()
        why = [x for x in log if "error" in x.lower() or "assert" in x.lower()] or log or ["no output"]
        print("llama.cpp failed on the %s GGUF (%s): %s" % (type, d, why[-1].strip()))
        return None
    pick = lambda p, g: next(r for r in runs if r["n_prompt"] == p and r["n_gen"] == g)
    return {"prefill_tok_s": pick(128, 0)["avg_ts"], "decode_tok_s": pick(0, 64)["avg_ts"], "info": runs[0]}
def llama(type):
    results = [r for r in (llama_round(d, type) for d in rounds) if r]
    return medians(results) if results else None
d = {n: dsv3(n) for n in ("gguf-bf16", "gguf-bf16-act", "gguf-q8_0", "gguf-q8_0-act", "gguf-q8_0-q8", "st-bf16",
                          "st-bf16-mtp", "st-fp8", "st-fp8-mtp", "st-fp8-act")}
l = {t: llama(t) for t in ("bf16", "q8_0")}
rows = [("llama.cpp", "BF16 GGUF", l["bf16"], d["gguf-bf16"]), ("dsv3", "BF16 GGUF", d["gguf-bf16"], d["gguf-bf16"]),
        ("dsv3", "BF16 GGUF, --activations bf16", d["gguf-bf16-act"], d["gguf-bf16"]),
        ("llama.cpp", "Q8_0 GGUF", l["q8_0"], d["gguf-q8_0"]), ("dsv3", "Q8_0 GGUF", d["gguf-q8_0"], d["gguf-q8_0"]),
        ("dsv3", "Q8_0 GGUF, --activations bf16", d["gguf-q8_0-act"], d["gguf-q8_0"]),
        ("dsv3", "Q8_0 GGUF, --activations q8", d["gguf-q8_0-q8"], d["gguf-q8_0"]),
        ("dsv3", "BF16 safetensors", d["st-bf16"], d["st-bf16"]),
        ("dsv3", "BF16 safetensors + MTP", d["st-bf16-mtp"], d["st-bf16-mtp"]),
        ("dsv3", "FP8 safetensors", d["st-fp8"], d["st-fp8"]),
        ("dsv3", "FP8 safetensors + MTP", d["st-fp8-mtp"], d["st-fp8-mtp"]),
        ("dsv3", "FP8 safetensors, --activations bf16", d["st-fp8-act"], d["st-fp8-act"])]
i = next((r["info"] for r in l.values() if r), {})
print("llama.cpp build %s (%s backend) on %s; 2 threads, prefill 128 tokens, decode 64 tokens; medians of %d rounds"
      % (i.get("build_commit"), i.get("backends"), i.get("cpu_info"), len(rounds)))
print()
print("| engine | weights | prefill tok/s | decode tok/s | MB/token | read GB/s | decode floor tok/s | decode / floor |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for engine, weights, r, f in rows:
    if r is None:
        print("| %s | %s | failed | failed | | | | |" % (engine, weights))
        continue
    if "mtp_acceptance" in r: weights += " (acceptance %.2f)" % r["mtp_acceptance"]
    print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f %% |" % (engine, weights, r["prefill_tok_s"], r["decode_tok_s"],
          f["active_weight_mb_per_token"], f["read_bandwidth_gb_s"], f["decode_floor_tok_s"], 100 * r["decode_tok_s"] / f["decode_floor_tok_s"]))
print()
print("floor = MB/token / read GB/s (dsv3's count of active weight bytes, bandwidth measured in that dsv3 row's runs);")
print("llama.cpp rows use dsv3's floor on the same file; with MTP, decode / floor may exceed 100 %.")
print()
lv = lambda type, key: l[type][key] if l[type] else None
def ratio(name, a, b, target):
    print("- %s: %s (target >= %s)" % (name, "%.2fx" % (a / b) if a and b else "n/a", target))
ratio("decode BF16, dsv3 / llama.cpp (same GGUF)", d["gguf-bf16"]["decode_tok_s"], lv("bf16", "decode_tok_s"), "1.0x")
ratio("decode BF16, dsv3 --activations bf16 (llama.cpp's numerics) / llama.cpp", d["gguf-bf16-act"]["decode_tok_s"],
      lv("bf16", "decode_tok_s"), "1.0x")
ratio("decode Q8_0, dsv3 / llama.cpp (same GGUF)", d["gguf-q8_0"]["decode_tok_s"], lv("q8_0", "decode_tok_s"), "1.3x")
ratio("decode Q8_0, dsv3 --activations bf16 / llama.cpp", d["gguf-q8_0-act"]["decode_tok_s"],
      lv("q8_0", "decode_tok_s"), "1.3x")
ratio("decode Q8_0, dsv3 --activations q8 (llama.cpp's numerics) / llama.cpp", d["gguf-q8_0-q8"]["decode_tok_s"],
      lv("q8_0", "decode_tok_s"), "1.3x")
ratio("decode dsv3 FP8 / llama.cpp BF16", d["st-fp8"]["decode_tok_s"], lv("bf16", "decode_tok_s"), "1.8x")
ratio("decode dsv3 FP8 + MTP / llama.cpp BF16", d["st-fp8-mtp"]["decode_tok_s"], lv("bf16", "decode_tok_s"), "1.8x")
ratio("decode dsv3 FP8 --activations bf16 / llama.cpp BF16", d["st-fp8-act"]["decode_tok_s"],
      lv("bf16", "decode_tok_s"), "1.8x")
ratio("prefill BF16, dsv3 / llama.cpp (same GGUF)", d["gguf-bf16"]["prefill_tok_s"], lv("bf16", "prefill_tok_s"),
      "1.5x")
ratio("prefill BF16, dsv3 --activations bf16 (AMX tiles where present) / llama.cpp", d["gguf-bf16-act"]["prefill_tok_s"],
      lv("bf16", "prefill_tok_s"), "1.5x")
ratio("prefill Q8_0, dsv3 / llama.cpp (same GGUF)", d["gguf-q8_0"]["prefill_tok_s"], lv("q8_0", "prefill_tok_s"),
      "1.5x")
PY
