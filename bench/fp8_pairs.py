#!/usr/bin/python3
"""FP8 vs BF16 training loss over several pairs of runs (bench/fp8.sh trains one pair; more pairs come
from other seeds or perturbed initialisations with the same settings): per 100 steps the 50-step mean
training loss of each run, FP8 / BF16 - 1 per pair, and the mean over pairs with one standard error;
then the final training and validation losses the same way.

usage: bench/fp8_pairs.py NAME:BF16_RUN:FP8_RUN [NAME:BF16_RUN:FP8_RUN ...]   (run = a train --out directory)
"""
import json
import math
import statistics
import sys


def load(run):
    steps = {}
    with open(run + "/metrics.jsonl") as f:
        for line in f:
            entry = json.loads(line)
            steps[entry["step"]] = entry
    return steps


def summary(diffs):
    mean = statistics.mean(diffs)
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return "%+.2f %% +- %.2f %%" % (100 * mean, 100 * error)


pairs = [arg.split(":") for arg in sys.argv[1:]]
if not pairs or any(len(p) != 3 for p in pairs):
    sys.exit(__doc__)
runs = {(name, kind): load(path) for name, bf16, fp8 in pairs for kind, path in (("bf16", bf16), ("fp8", fp8))}
last = min(max(steps) for steps in runs.values())


def window_mean(steps, lo, hi):
    return sum(steps[s]["loss"] for s in range(lo, hi + 1)) / (hi - lo + 1)


print("| steps | " + " | ".join("%s: bf16 / fp8 / diff" % name for name, _, _ in pairs) + " | mean diff +- s.e. |")
print("|---|" + "---:|" * (len(pairs) + 1))
for hi in range(100, last + 1, 100):
    lo = hi - 49
    cells, diffs = [], []
    for name, _, _ in pairs:
        b, f = window_mean(runs[name, "bf16"], lo, hi), window_mean(runs[name, "fp8"], lo, hi)
        diffs.append(f / b - 1)
        cells.append("%.4f / %.4f / %+.2f %%" % (b, f, 100 * (f / b - 1)))
    print("| %d-%d | %s | %s |" % (lo, hi, " | ".join(cells), summary(diffs)))
for key in ("loss", "val_loss"):
    if not all(key in runs[name, kind][last] for name, _, _ in pairs for kind in ("bf16", "fp8")):
        continue
    values = [(runs[name, "bf16"][last][key], runs[name, "fp8"][last][key]) for name, _, _ in pairs]
    print("step %d %s (bf16 / fp8): %s; mean diff %s" % (
        last, key, ", ".join("%s %.4f / %.4f" % (name, b, f) for (name, _, _), (b, f) in zip(pairs, values)),
        summary([f / b - 1 for b, f in values])))
