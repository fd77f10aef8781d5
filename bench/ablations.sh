#!/usr/bin/env bash
# The report's ablations on one machine: the same data, seed and steps trained with
# aux-free balancing, the classic aux-loss, no balancing, and aux-free without MTP.
# Prints final validation loss, MTP loss and MaxVio (mean over the last quarter of steps),
# writes each run's plots (dsv3 plot) and runs/bench/ablations/compare.png (the variants'
# training loss and MaxVio, smoothed over 20 steps, on one chart each).
#   bench/ablations.sh [STEPS] [BATCH]      (default 100 steps of 8 x 128 tokens, small preset)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100}
batch=${2:-8}
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >/dev/null
out=runs/bench/ablations
mkdir -p $out/data
[ -f $out/data/kjv.txt ] || bible 'Gen1:1-Rev22:21' >$out/data/kjv.txt
common=(--data $out/data --tokenizer $out/tokenizer --steps "$steps" --batch "$batch" --seq-len 128
        --eval-every "$steps" --save-every 0 --seed 1)
[ -f $out/tokenizer/tokenizer.json ] || ./build/dsv3 tokenizer-train --data $out/data --vocab-size 8192 -o $out/tokenizer

printf '%-22s %10s %10s %12s %10s\n' variant val_loss mtp_loss maxvio_last tok/s
for variant in aux-free aux-loss none aux-free-no-mtp; do
  case $variant in
    aux-free-no-mtp) flags=(--balance aux-free --mtp-weight 0) ;;
    *) flags=(--balance $variant) ;;
  esac
  rm -rf $out/$variant
  ./build/dsv3 train "${common[@]}" "${flags[@]}" --out $out/$variant 2>/dev/null
  ./build/dsv3 plot $out/$variant 2>/dev/null
  /usr/bin/python3 - $out/$variant/metrics.jsonl $variant <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
tail = log[-max(1, len(log) // 4):]
mean = lambda k: sum(r[k] for r in tail) / len(tail)
print("%-22s %10.4f %10.4f %12.3f %10.0f" % (sys.argv[2], log[-1]["val_loss"], mean("mtp_loss"), mean("maxvio"),
                                            mean("tokens_per_s")))
PY
done

/usr/bin/python3 - $out <<'PY'
import json, sys
out = sys.argv[1]
for variant in ("aux-free", "aux-loss", "none", "aux-free-no-mtp"):
    log = [json.loads(l) for l in open("%s/%s/metrics.jsonl" % (out, variant))]
    with open("%s/%s/smoothed.dat" % (out, variant), "w") as f:
        for i in range(len(log)):
            w = log[max(0, i - 19):i + 1]
            f.write("%d %g %g\n" % (log[i]["step"], sum(r["loss"] for r in w) / len(w), sum(r["maxvio"] for r in w) / len(w)))
PY
gnuplot <<GP
set terminal pngcairo size 1200,500
set output "$out/compare.png"
set multiplot layout 1,2
set title "training loss (20-step mean)"; set xlabel "step"
plot for [v in "aux-free aux-loss none aux-free-no-mtp"] "$out/".v."/smoothed.dat" using 1:2 with lines title v
set title "MaxVio (20-step mean)"; set logscale y
plot for [v in "aux-free aux-loss none aux-free-no-mtp"] "$out/".v."/smoothed.dat" using 1:3 with lines title v
GP
echo "plots: $out/compare.png, $out/<variant>/plots/"
