#!/usr/bin/python3
"""The gradient of dsv3's training loss against PyTorch autograd on the float64 reference.

    check_grads.py --dsv3 PATH_TO_BINARY --case NAME [--workdir DIR]

For a generated checkpoint (make_checkpoint.py's cases), `dsv3 grad` writes the gradient of
    L = mean CE(main logits[t], ids[t+1]) + 0.3 * mean CE(MTP logits[i], ids[i+2])
with respect to every parameter; the reference computes the same loss with torch in float64
(dsv3_ref.Reference, plain attention, the MTP module sharing the main model's embedding and
head as training does) and differentiates it with autograd. Passes when the relative error
||g_dsv3 - g_ref|| / ||g_ref|| is <= 1e-4 over all parameters together and for every tensor
whose gradient is not negligible."""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dsv3_ref  # noqa: E402
import make_checkpoint as mc  # noqa: E402

MTP_WEIGHT = 0.3
TOLERANCE = 1e-4
ROUTING_MARGIN = 1e-4  # FP32 routing must make the same choices as the float64 reference


def pick_ids(cfg, weights, seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        ids = [int(x) for x in rng.integers(0, cfg["vocab_size"], size=int(rng.integers(10, 16)))]
        ref = dsv3_ref.Reference(cfg, weights, mut=("mtp_main_embed_head",))
        ref.route_log = []
        ref.forward(ids)
        if min([r["margin"] for r in ref.route_log], default=float("inf")) >= ROUTING_MARGIN:
            return ids
    raise RuntimeError("no token sequence with a routing margin >= %g" % ROUTING_MARGIN)


def reference_gradients(cfg, weights, ids):
    ref = dsv3_ref.Reference(cfg, weights, mut=("mtp_main_embed_head",))
    for tensor in ref.W.values():
        tensor.requires_grad_(True)
    logits, mtp = ref.forward(ids)
    target = torch.as_tensor(ids, dtype=torch.long)
    loss = torch.nn.functional.cross_entropy(logits[:-1], target[1:])
    if mtp is not None:
        loss = loss + MTP_WEIGHT * torch.nn.functional.cross_entropy(mtp[:-1], target[2:])
    loss.backward()
    return {name: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape)) for name, t in ref.W.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsv3", required=True)
    ap.add_argument("--case", required=True, choices=mc.case_names())
    ap.add_argument("--workdir")
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.workdir or tempfile.mkdtemp(prefix="dsv3_grad_")
    model_dir = os.path.join(work, a.case)
    mc.write_checkpoint(a.case, model_dir)
    cfg, weights = mc.load_checkpoint(model_dir)
    ids = pick_ids(cfg, weights, mc.CASES[a.case][2]["seed"])

    out = os.path.join(work, a.case + ".grads.safetensors")
    run = subprocess.run([a.dsv3, "grad", "-m", model_dir, "--ids", " ".join(map(str, ids)), "-o", out,
                          "--mtp-weight", str(MTP_WEIGHT)], capture_output=True, text=True)
    if run.returncode != 0:
        print("FAIL %s: dsv3 grad exited %d: %s" % (a.case, run.returncode, run.stderr.strip()))
        return 1
    ours = {name: arr for name, (dtype, shape, arr) in mc.read_safetensors(out)[0].items()}
    theirs = reference_gradients(cfg, weights, ids)

    mtp_prefix = "model.layers.%d." % cfg["num_hidden_layers"]
    shared_copies = {mtp_prefix + "embed_tokens.weight", mtp_prefix + "shared_head.head.weight"}
    diff = norm = 0.0
    problems = []
    largest = max(float(np.abs(g).max()) for g in theirs.values())
    for name, g_ref in theirs.items():
        if name in shared_copies or name.endswith("e_score_correction_bias"):
            continue  # copies of the main tensors / the bias only selects and gets no gradient
        if name not in ours:
            problems.append("dsv3 has no gradient for " + name)
            continue
        g = ours[name].reshape(g_ref.shape)
        d = float(np.linalg.norm(g - g_ref))
        n = float(np.linalg.norm(g_ref))
        diff += d * d
        norm += n * n
        if n > 1e-3 * largest and d > TOLERANCE * n:
            problems.append("%s: relative error %.2e" % (name, d / n))
    total = (diff ** 0.5) / (norm ** 0.5)
    if total > TOLERANCE:
        problems.append("all parameters: relative error %.2e > %g" % (total, TOLERANCE))
    if problems:
        print("FAIL %s (T=%d):\n  %s" % (a.case, len(ids), "\n  ".join(problems)))
        return 1
    print("PASS %s: T=%d, gradient of main + %.1f MTP loss vs torch autograd: relative error %.2e over %d tensors"
          % (a.case, len(ids), MTP_WEIGHT, total, len(theirs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
