#!/usr/bin/env bash
# Every failure of the dsv3 binary is one line `dsv3: error: ...` on stderr and a non-zero
# exit, never a crash: usage: errors.sh PATH_TO_DSV3 WORK_DIR
set -uo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
failures=0
passed=0

# expect_error NAME FRAGMENT COMMAND...: fails unless COMMAND exits 1 or 2 with exactly one
# stderr line starting "dsv3: error:" and containing FRAGMENT.
expect_error() {
  local name=$1 fragment=$2
  shift 2
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$work/err")
  if [[ $rc -ne 1 && $rc -ne 2 ]] || [[ $lines -ne 1 ]] || ! grep -q '^dsv3: error: ' "$work/err" ||
     ! grep -qF -- "$fragment" "$work/err"; then
    echo "FAIL $name: exit $rc, stderr:"; cat "$work/err"
    failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
}

"$dsv3" init --preset tiny -o "$work/tiny" 2>/dev/null
sed 's/"num_nextn_predict_layers": 1/"num_nextn_predict_layers": 0/' "$work/tiny/config.json" >"$work/no_mtp.json"
"$dsv3" init --config "$work/no_mtp.json" -o "$work/no_mtp" 2>/dev/null
mkdir -p "$work/truncated" && cp "$work/tiny/config.json" "$work/truncated/"
head -c 5000 "$work/tiny/model.safetensors" >"$work/truncated/model.safetensors"

expect_error missing_model "model directory not found" "$dsv3" logits -m "$work/nope" --ids "1 2" -o "$work/o.npy"
expect_error truncated_weights "model.safetensors" "$dsv3" logits -m "$work/truncated" --ids "1 2" -o "$work/o.npy"
expect_error bad_id "'x'" "$dsv3" logits -m "$work/tiny" --ids "1 x 3" -o "$work/o.npy"
expect_error id_past_vocab "512" "$dsv3" logits -m "$work/tiny" --ids "1 512" -o "$work/o.npy"
expect_error no_ids "--ids" "$dsv3" logits -m "$work/tiny" --ids "" -o "$work/o.npy"
expect_error mtp_without_layer "--mtp" "$dsv3" logits -m "$work/no_mtp" --ids "1 2" -o "$work/o.npy" --mtp "$work/m.npy"
expect_error too_long "context" "$dsv3" logits -m "$work/tiny" --ids "$(seq -s ' ' 1 1025 | tr -d '\n' | sed 's/[0-9]\+/1/g')" -o "$work/o.npy"
expect_error unwritable_output "cannot create" "$dsv3" logits -m "$work/tiny" --ids "1 2" -o "$work/no/such/dir/o.npy"
expect_error unknown_command "command line" "$dsv3" frobnicate
expect_error missing_option "command line" "$dsv3" logits -m "$work/tiny"
expect_error bad_threads "command line" "$dsv3" logits -m "$work/tiny" --ids 1 -o "$work/o.npy" -t 100000
expect_error bad_preset "preset" "$dsv3" init --preset huge -o "$work/x"
expect_error zero_vocab "--vocab-size" "$dsv3" init --preset tiny --vocab-size 0 -o "$work/x"
expect_error vocab_below_special_ids "below vocab_size" "$dsv3" init --preset tiny --vocab-size 1 -o "$work/x"
expect_error no_tokenizer "tokenizer.json" "$dsv3" tokenize -m "$work/tiny" "hello"
expect_error generate_no_tokenizer "tokenizer.json" "$dsv3" generate -m "$work/tiny" -p "hello"
"$dsv3" tokenizer-train --data "$work/no_mtp.json" --vocab-size 300 -o "$work/tok" 2>/dev/null
cp "$work/tok/"* "$work/no_mtp/" && cp "$work/tok/"* "$work/tiny/"
expect_error speculative_without_mtp "MTP module" "$dsv3" generate -m "$work/no_mtp" -p "hello" --speculative mtp
expect_error bad_draft "--draft" "$dsv3" generate -m "$work/tiny" -p "hello" --draft 0
expect_error bad_cpu_variant "DSV3_CPU=sse9: no such kernel variant" env DSV3_CPU=sse9 "$dsv3" logits -m "$work/tiny" \
  --ids "1 2" -o "$work/o.npy"
expect_error bad_activations "--activations: fp16 not in {fp32,bf16,q8}" "$dsv3" generate -m "$work/tiny" -p "hello" \
  --activations fp16
expect_error generate_past_context "new tokens exceed the context of 1024" "$dsv3" generate -m "$work/tiny" -p "hello" -n 5000
expect_error empty_stop "stop string" "$dsv3" generate -m "$work/tiny" -p "hello" --stop ""
expect_error bench_past_context "context" "$dsv3" bench -m "$work/tiny" -p 1000 -n 100
expect_error bad_balance "--balance" "$dsv3" train --data "$work/tiny/config.json" --out "$work/run" --balance bogus

expect_error convert_into_model "not an empty directory" "$dsv3" convert -m "$work/tiny" -o "$work/tiny" --to bf16
expect_error convert_unknown_target "--to" "$dsv3" convert -m "$work/tiny" -o "$work/c1" --to int4
expect_error convert_missing_model "not found" "$dsv3" convert -m "$work/nope" -o "$work/c2" --to fp8
expect_error convert_truncated "model.safetensors" "$dsv3" convert -m "$work/truncated" -o "$work/c3" --to fp8
expect_error convert_type_without_gguf "--type" "$dsv3" convert -m "$work/tiny" -o "$work/c4" --to bf16 --type q8_0
expect_error convert_bad_gguf_type "--type" "$dsv3" convert -m "$work/tiny" -o "$work/x.gguf" --to gguf --type q4_0

mkdir -p "$work/gguf"
"$dsv3" convert -m "$work/tiny" -o "$work/gguf/tiny.gguf" --to gguf 2>/dev/null
head -c 3000 "$work/gguf/tiny.gguf" >"$work/gguf/truncated.gguf"
expect_error gguf_exists "exists" "$dsv3" convert -m "$work/tiny" -o "$work/gguf/tiny.gguf" --to gguf
expect_error gguf_truncated "truncated.gguf" "$dsv3" logits -m "$work/gguf/truncated.gguf" --ids "1 2" -o "$work/o.npy"
expect_error gguf_not_gguf "not a GGUF file" "$dsv3" logits -m "$work/tiny/config.json" --ids "1 2" -o "$work/o.npy"
expect_error gguf_no_tokenizer "tokenizer.json" "$dsv3" generate -m "$work/gguf/tiny.gguf" -p "hello"

expect_error serve_missing_model "model directory not found" "$dsv3" serve -m "$work/nope" --port 0
mkdir -p "$work/no_tokenizer" && cp "$work/tiny/config.json" "$work/tiny/model.safetensors" "$work/no_tokenizer/"
expect_error serve_no_tokenizer "tokenizer.json" timeout 20 "$dsv3" serve -m "$work/no_tokenizer" --port 0
expect_error serve_bad_port "--port" "$dsv3" serve -m "$work/tiny" --port 70000

# Parallelism flags outside mpirun, and pipeline schedules.
mkdir -p "$work/text" && echo "in the beginning" >"$work/text/a.txt"
expect_error train_pp_without_mpirun "--pp 2 must be 1 or the number of ranks (1" "$dsv3" train --data "$work/text" \
  --out "$work/run_pp" --pp 2
expect_error train_ep_without_mpirun "--ep 2 must be 1 or the number of ranks (1" "$dsv3" train --data "$work/text" \
  --out "$work/run_ep" --ep 2
expect_error train_bad_grad_reduce "--grad-reduce must be overlap or after, got later" "$dsv3" train \
  --data "$work/text" --out "$work/run_gr" --grad-reduce later
expect_error logits_ep_without_mpirun "start with mpirun" "$dsv3" logits -m "$work/tiny" --ids "1 2" -o "$work/o.npy" \
  --ep 2
expect_error schedule_odd_pp "even number of pipeline ranks" "$dsv3" schedule --pp 3 --micro-batches 8 --schedule dualpipe
expect_error schedule_bad_times "--times" "$dsv3" schedule --pp 4 --micro-batches 8 --times 1,x,1

"$dsv3" logits --help >/dev/null || { echo "FAIL help"; failures=$((failures + 1)); }
echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
