#!/usr/bin/python3
"""Training steps of the same model in PyTorch (Debian's python3-torch), for bench/train_vs_torch.sh.

Two implementations of the same step (forward, backward with autograd, global-norm clipping,
torch.optim.AdamW), both in float32 with the MTP module sharing the main embedding and head:
  unbatched  the float64 reference of tests/reference run in float32, one sequence at a time
             (as dsv3 processes them);
  batched    what a PyTorch user would write: the whole batch as [B, T] tensors, attention as
             batched einsums with a causal mask, MoE by gathering each expert's tokens.
The sequence-wise balance loss (alpha 1e-4 in dsv3) is left out: it costs nothing measurable.
    train_torch.py MODEL_DIR STEPS BATCH SEQ_LEN THREADS [unbatched|batched]
        -> prints the median tokens/s of steps 2..STEPS"""
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import dsv3_ref  # noqa: E402
import make_checkpoint as mc  # noqa: E402


class Batched:
    def __init__(self, cfg, W):
        self.c, self.W = cfg, W
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.L = cfg["num_hidden_layers"]
        inv, self.cs_mult, self.scale = dsv3_ref.rope_params(cfg)
        self.inv_freq = inv.to(torch.float32)

    def lin(self, x, name):
        return x @ self.W[name].T

    def rms(self, x, name):
        return self.W[name] * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def rope(self, x, cos, sin):  # interleaved pairs; cos/sin broadcast to x[..., ::2]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    def swiglu(self, x, p):
        return self.lin(F.silu(self.lin(x, p + "gate_proj.weight")) * self.lin(x, p + "up_proj.weight"),
                        p + "down_proj.weight")

    def attention(self, p, x, cos, sin):
        c, (B, T, _) = self.c, x.shape
        H, nope, rope, vd = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        if c.get("q_lora_rank"):
            q = self.lin(self.rms(self.lin(x, p + "q_a_proj.weight"), p + "q_a_layernorm.weight"), p + "q_b_proj.weight")
        else:
            q = self.lin(x, p + "q_proj.weight")
        q = q.view(B, T, H, nope + rope)
        q = torch.cat([q[..., :nope], self.rope(q[..., nope:], cos[:, None], sin[:, None])], -1)
        kv = self.lin(x, p + "kv_a_proj_with_mqa.weight")
        ckv = self.rms(kv[..., :c["kv_lora_rank"]], p + "kv_a_layernorm.weight")
        k_pe = self.rope(kv[..., c["kv_lora_rank"]:], cos, sin)
        kv = self.lin(ckv, p + "kv_b_proj.weight").view(B, T, H, nope + vd)
        k = torch.cat([kv[..., :nope], k_pe[:, :, None].expand(B, T, H, rope)], -1)
        scores = torch.einsum("bihd,bjhd->bhij", q, k) * self.scale
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        o = torch.einsum("bhij,bjhd->bihd", torch.softmax(scores, -1), kv[..., nope:])
        return self.lin(o.reshape(B, T, H * vd), p + "o_proj.weight")

    def moe(self, p, x):
        c, shape = self.c, x.shape
        x = x.reshape(-1, shape[-1])
        E, k = c["n_routed_experts"], c["num_experts_per_tok"]
        G, TG = c.get("n_group") or 1, c.get("topk_group") or 1
        s = torch.sigmoid(self.lin(x, p + "gate.weight"))
        sel = (s + self.W[p + "gate.e_score_correction_bias"]).detach()
        if G > 1:
            g = sel.view(-1, G, E // G)
            keep = torch.zeros(x.shape[0], G, dtype=torch.bool)
            keep.scatter_(1, g.topk(2, -1).values.sum(-1).topk(TG, -1).indices, True)
            sel = sel.masked_fill(~keep[:, :, None].expand(-1, G, E // G).reshape(-1, E), float("-inf"))
        idx = sel.topk(k, -1).indices
        w = s.gather(1, idx)
        w = w / w.sum(-1, keepdim=True) * float(c.get("routed_scaling_factor", 1.0))
        out = torch.zeros_like(x)
        for e in range(E):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel():
                out = out.index_add(0, rows, w[rows, slot, None] * self.swiglu(x[rows], p + "experts.%d." % e))
        if c.get("n_shared_experts"):
            out = out + self.swiglu(x, p + "shared_experts.")
        return out.view(shape)

    def block(self, layer, h, cos, sin):
        p = "model.layers.%d." % layer
        h = h + self.attention(p + "self_attn.", self.rms(h, p + "input_layernorm.weight"), cos, sin)
        x = self.rms(h, p + "post_attention_layernorm.weight")
        moe = layer >= self.L or layer >= self.c.get("first_k_dense_replace", 0)
        return h + (self.moe(p + "mlp.", x) if moe else self.swiglu(x, p + "mlp."))

    def forward(self, ids):  # ids [B, T] -> logits [B, T, V], MTP logits [B, T-1, V]
        T = ids.shape[1]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        cos, sin = torch.cos(ang) * self.cs_mult, torch.sin(ang) * self.cs_mult
        h = self.W["model.embed_tokens.weight"][ids]
        for layer in range(self.L):
            h = self.block(layer, h, cos, sin)
        hn = self.rms(h, "model.norm.weight")
        logits = self.lin(hn, "lm_head.weight")
        p = "model.layers.%d." % self.L
        x = torch.cat([self.rms(self.W["model.embed_tokens.weight"][ids[:, 1:]], p + "enorm.weight"),
                       self.rms(hn[:, :-1], p + "hnorm.weight")], -1)
        x = self.block(self.L, self.lin(x, p + "eh_proj.weight"), cos[:T - 1], sin[:T - 1])
        mtp = self.lin(self.rms(x, p + "shared_head.norm.weight"), "lm_head.weight")
        return logits, mtp


def main():
    model_dir, steps, batch, seq_len, threads = sys.argv[1], *map(int, sys.argv[2:6])
    mode = sys.argv[6] if len(sys.argv) > 6 else "batched"
    torch.set_num_threads(threads)
    cfg, weights = mc.load_checkpoint(model_dir)
    ref = dsv3_ref.Reference(cfg, weights, mut=("mtp_main_embed_head",), dtype=torch.float32)
    params = [t.requires_grad_(True) for name, t in ref.W.items() if not name.endswith("e_score_correction_bias")]
    model = Batched(cfg, ref.W)
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(0)
    V = cfg["vocab_size"]
    rates = []
    for step in range(steps):
        ids = torch.as_tensor(rng.integers(0, V, size=(batch, seq_len + 1)), dtype=torch.long)
        start = time.perf_counter()
        opt.zero_grad()
        if mode == "batched":
            logits, mtp = model.forward(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
            loss = loss + 0.3 * F.cross_entropy(mtp[:, :-1].reshape(-1, V), ids[:, 2:].reshape(-1))
            loss.backward()
        else:
            for b in range(batch):
                logits, mtp = ref.forward(ids[b])
                loss = F.cross_entropy(logits[:-1], ids[b, 1:]) + 0.3 * F.cross_entropy(mtp[:-1], ids[b, 2:])
                (loss / batch).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        rates.append(batch * seq_len / (time.perf_counter() - start))
    print("%.1f" % statistics.median(rates[1:]))


if __name__ == "__main__":
    main()
