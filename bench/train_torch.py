#!/usr/bin/python3
"""Training steps of the same model in PyTorch (Debian's python3-torch), for bench/train_vs_torch.sh:
the float64 reference of tests/reference run in float32 with autograd, the MTP module sharing the
main embedding and head, torch.optim.AdamW; one sequence at a time as dsv3 does.
    train_torch.py MODEL_DIR STEPS BATCH SEQ_LEN THREADS  -> prints the median tokens/s of steps 2.."""
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import dsv3_ref  # noqa: E402
import make_checkpoint as mc  # noqa: E402


def main():
    model_dir, steps, batch, seq_len, threads = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    cfg, weights = mc.load_checkpoint(model_dir)
    ref = dsv3_ref.Reference(cfg, weights, mut=("mtp_main_embed_head",), dtype=torch.float32)
    params = [t.requires_grad_(True) for name, t in ref.W.items() if not name.endswith("e_score_correction_bias")]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(0)
    rates = []
    for step in range(steps):
        start = time.perf_counter()
        opt.zero_grad()
        for _ in range(batch):
            ids = torch.as_tensor(rng.integers(0, cfg["vocab_size"], size=seq_len + 1), dtype=torch.long)
            logits, mtp = ref.forward(ids)
            loss = torch.nn.functional.cross_entropy(logits[:-1], ids[1:])
            loss = loss + 0.3 * torch.nn.functional.cross_entropy(mtp[:-1], ids[2:])
            (loss / batch).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        rates.append(batch * seq_len / (time.perf_counter() - start))
    print("%.1f" % statistics.median(rates[1:]))


if __name__ == "__main__":
    main()
