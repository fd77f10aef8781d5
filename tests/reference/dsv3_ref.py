#!/usr/bin/python3
"""Float64 reference forward pass of a DeepSeek-V3-architecture model.

Written from the dsv3 spec digest (architecture.md, checkpoint.md) and checked
against the semantics of the official inference code and Hugging Face's
modeling_deepseek.py (no code copied, none shared with the C++ engine).

Main path (`forward`): NAIVE multi-head latent attention, i.e. per-head keys
k = [W_kvb^k c_kv ; k_pe] and values v = W_kvb^v c_kv, prefill over all T
positions with a causal mask.  A second, independent path
(`forward_incremental`) uses the ABSORBED form, one token at a time with a
cache of only c_kv and k_pe per layer; the two must agree to ~1e-12.

Semantics (see README.md for the list):
  * RMSNorm y = w * x / sqrt(mean(x^2) + eps), eps = rms_norm_eps.
  * RoPE on interleaved pairs (x[2i], x[2i+1]), theta_i = rope_theta^(-2i/d_rope).
  * YaRN whenever rope_scaling type is "yarn" (Hugging Face rule): ramped
    frequencies, cos/sin times yarn_mscale(f, mscale)/yarn_mscale(f, mscale_all_dim),
    softmax scale times yarn_mscale(f, mscale_all_dim)^2 when mscale_all_dim != 0.
  * MoE routing per topk_method (noaux_tc / group_limited_greedy / greedy).
  * MTP: x_i = eh_proj([enorm(E_mtp[t_{i+1}]) ; hnorm(h_i)]), h_i after model.norm,
    then one MoE decoder block causal over positions 0..T-2, then
    shared_head.head(shared_head.norm(x)).
"""

import math

import torch

torch.set_default_dtype(torch.float64)
DT = torch.float64


def yarn_mscale(scale, m):
    if scale <= 1:
        return 1.0
    return 0.1 * m * math.log(scale) + 1.0


def topk_method_of(cfg):
    m = cfg.get("topk_method")
    if m:
        return m
    return "noaux_tc" if cfg.get("scoring_func", "softmax") == "sigmoid" else "greedy"


def rope_params(cfg, mut=()):
    """-> (inv_freq [d_rope/2] float64, cos/sin multiplier, softmax scale).
    `mut`: deliberate mistakes for the sensitivity check (see MUTATIONS)."""
    dim = cfg["qk_rope_head_dim"]
    base = float(cfg.get("rope_theta", 10000.0))
    i = torch.arange(0, dim, 2, dtype=DT)
    inv = base ** (-i / dim)
    cs_mult = 1.0
    attn_m = 1.0
    rs = cfg.get("rope_scaling")
    if rs and "no_yarn" not in mut:
        kind = rs.get("type", rs.get("rope_type"))
        if kind != "yarn":
            raise NotImplementedError("rope_scaling type %r" % kind)
        factor = float(rs["factor"])
        orig = float(rs.get("original_max_position_embeddings", 4096))
        bfast = float(rs.get("beta_fast", 32))
        bslow = float(rs.get("beta_slow", 1))
        ms = float(rs.get("mscale", 1.0))
        msa = float(rs.get("mscale_all_dim", 0.0))

        cdim, corig = (64, 4096.0) if "yarn_spec_literals" in mut else (dim, orig)

        def corr(n):
            return cdim * math.log(corig / (n * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(corr(bfast)), 0)
        high = min(math.ceil(corr(bslow)), cdim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=DT) - low) / (high - low)).clamp(0, 1)
        if "yarn_ramp_flipped" in mut:
            ramp = 1 - ramp
        inv = inv / factor * ramp + inv * (1 - ramp)
        cs_mult = yarn_mscale(factor, ms) / yarn_mscale(factor, msa)
        if msa:
            attn_m = yarn_mscale(factor, msa)
        if "yarn_m_ignore_msa" in mut:
            attn_m = yarn_mscale(factor, 1.0)
        if "yarn_no_m2" in mut:
            attn_m = 1.0
        if "yarn_no_cs_mult" in mut:
            cs_mult = 1.0
        if "yarn_m_from_mscale" in mut:       # official code: m from `mscale`
            attn_m, cs_mult = yarn_mscale(factor, ms), 1.0
    scale = (cfg["qk_nope_head_dim"] + dim) ** -0.5 * attn_m * attn_m
    return inv, cs_mult, scale


# Deliberate mistakes; check_logits.py --self-check verifies that each one that
# applies to a case moves the reference logits by far more than the tolerance,
# i.e. that the cases can tell the right semantics from these wrong ones.
MUTATIONS = {
    "no_bias": "e_score_correction_bias ignored in selection",
    "bias_in_weights": "gate weights from biased scores s+b",
    "no_group_limit": "group restriction ignored",
    "group_max": "noaux_tc group score = max instead of top-2 sum",
    "flip_norm_topk": "norm_topk_prob inverted",
    "no_routed_scale": "routed_scaling_factor ignored",
    "no_shared": "shared experts dropped",
    "half_rope": "RoPE on halves (x[i], x[i+d/2]) instead of interleaved pairs",
    "no_yarn": "rope_scaling ignored",
    "yarn_spec_literals": "YaRN ramp with the 671B literals 64 / 4096 instead of config",
    "yarn_ramp_flipped": "YaRN ramp applied the wrong way round",
    "yarn_m_ignore_msa": "YaRN m = 0.1 ln(factor) + 1 regardless of mscale_all_dim",
    "q_rope_first": "q head split as [rope, nope]",
    "kpe_first": "kv_a_proj output split as [k_pe, c_kv]",
    "kvb_v_first": "kv_b_proj head rows split as [v, k_nope]",
    "yarn_no_m2": "YaRN softmax m^2 factor missing",
    "yarn_no_cs_mult": "YaRN cos/sin mscale ratio missing",
    "yarn_m_from_mscale": "official-code rule: m from mscale, no cos/sin ratio",
    "eps_1e-6": "rms_norm_eps hard-coded to 1e-6",
    "mtp_swap_concat": "MTP concat(hidden, embedding)",
    "mtp_h_before_norm": "MTP uses h before model.norm",
    "mtp_main_embed_head": "MTP uses the main model's embed_tokens / lm_head",
    "mtp_zero_pos0": "vLLM-style zero embedding at MTP position 0",
}


class Reference:
    def __init__(self, cfg, weights, mut=(), dtype=DT):
        """cfg: config.json dict; weights: name -> numpy/tensor (decoded values).
        dtype: float64 for the reference; float32 only to emulate an FP32
        engine in the self-check (are the tolerances reachable?)."""
        self.dt = dtype
        self.mut = set(mut)
        assert self.mut <= set(MUTATIONS), self.mut
        self.cfg = cfg
        self.W = {k: torch.as_tensor(v, dtype=DT).to(dtype) for k, v in weights.items()}
        c = cfg
        self.d = c["hidden_size"]
        self.H = c["num_attention_heads"]
        self.nope = c["qk_nope_head_dim"]
        self.rope_dim = c["qk_rope_head_dim"]
        self.vd = c["v_head_dim"]
        self.rq = c.get("q_lora_rank") or 0
        self.rkv = c["kv_lora_rank"]
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        if "eps_1e-6" in self.mut:
            self.eps = 1e-6
        self.L = c["num_hidden_layers"]
        self.k_dense = c.get("first_k_dense_replace", 0)
        self.moe_freq = c.get("moe_layer_freq", 1) or 1
        self.has_mtp = bool(c.get("num_nextn_predict_layers", 0))
        self.method = topk_method_of(c)
        inv, self.cs_mult, self.scale = rope_params(c, self.mut)
        self.inv_freq = inv.to(dtype)
        self.route_log = None          # list of per-call routing records, if set

    # ---------------------------------------------------------------- basics
    def rmsnorm(self, x, wname):
        return self.W[wname] * x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)

    def lin(self, x, wname):
        return x @ self.W[wname].T

    def rope(self, x, pos):
        """x: [T, ..., d_rope], pos: [T] integer positions.  Interleaved pairs."""
        ang = pos.to(self.dt)[:, None] * self.inv_freq[None, :]       # [T, d/2]
        shape = [ang.shape[0]] + [1] * (x.dim() - 2) + [ang.shape[1]]
        cos = (torch.cos(ang) * self.cs_mult).reshape(shape)
        sin = (torch.sin(ang) * self.cs_mult).reshape(shape)
        if "half_rope" in self.mut:
            n = x.shape[-1] // 2
            x0, x1 = x[..., :n], x[..., n:]
            return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = torch.empty_like(x)
        y[..., 0::2] = x0 * cos - x1 * sin
        y[..., 1::2] = x0 * sin + x1 * cos
        return y

    def is_moe(self, layer):
        if layer >= self.L:                  # the MTP block
            return True
        return layer >= self.k_dense and layer % self.moe_freq == 0

    def swiglu(self, x, p):
        g = self.lin(x, p + "gate_proj.weight")
        u = self.lin(x, p + "up_proj.weight")
        return self.lin(torch.nn.functional.silu(g) * u, p + "down_proj.weight")

    # ---------------------------------------------------------------- MoE
    def route(self, p, x):
        """-> (idx [T,k] long, gate weights [T,k]); logs selection margins."""
        c = self.cfg
        E = c["n_routed_experts"]
        k = c["num_experts_per_tok"]
        logits = self.lin(x, p + "gate.weight")
        sf = c.get("scoring_func", "softmax")
        if sf == "sigmoid":
            s = torch.sigmoid(logits)
        elif sf == "softmax":
            s = torch.softmax(logits, dim=-1)
        else:
            raise NotImplementedError(sf)
        T = s.shape[0]
        G = c.get("n_group") or 1
        TG = c.get("topk_group") or G
        if self.method == "noaux_tc" and "no_bias" not in self.mut:
            sel = s + self.W[p + "gate.e_score_correction_bias"][None, :]
        elif self.method == "noaux_tc":
            sel = s
        elif self.method in ("group_limited_greedy", "greedy"):
            sel = s
        else:
            raise NotImplementedError(self.method)
        grouped = self.method != "greedy" and G > 1 and "no_group_limit" not in self.mut
        gmargin = torch.full((T,), float("inf"), dtype=s.dtype)
        if grouped:
            g = sel.view(T, G, E // G)
            if self.method == "noaux_tc" and "group_max" not in self.mut:
                gscore = g.topk(2, dim=-1).values.sum(-1)
            else:
                gscore = g.max(dim=-1).values
            gs_sorted = gscore.sort(dim=-1, descending=True).values
            if TG < G:
                gmargin = gs_sorted[:, TG - 1] - gs_sorted[:, TG]
            keep = torch.zeros(T, G, dtype=torch.bool)
            keep.scatter_(1, gscore.topk(TG, dim=-1).indices, True)
            keep = keep[:, :, None].expand(T, G, E // G).reshape(T, E)
            masked = sel.masked_fill(~keep, float("-inf"))
        else:
            masked = sel
        top = masked.topk(k, dim=-1)
        idx = top.indices
        w = (sel if "bias_in_weights" in self.mut else s).gather(1, idx)
        if bool(c.get("norm_topk_prob", False)) != ("flip_norm_topk" in self.mut):
            w = w / w.sum(-1, keepdim=True)
        if "no_routed_scale" not in self.mut:
            w = w * float(c.get("routed_scaling_factor", 1.0) or 1.0)
        if self.route_log is not None:
            srt = masked.sort(dim=-1, descending=True).values
            emargin = srt[:, k - 1] - srt[:, k] if k < E else torch.full((T,), float("inf"), dtype=s.dtype)
            emargin = torch.where(torch.isfinite(emargin), emargin,
                                  torch.full_like(emargin, float("inf")))
            rec = {"layer": p, "idx": idx.clone(),
                   "margin": float(torch.minimum(emargin, gmargin).min()),
                   "kth_sel": float(top.values[:, -1].min())}
            # how much the bias and the group limit matter
            plain = sel.topk(k, dim=-1).indices
            rec["group_changed"] = int(sum(set(a.tolist()) != set(b.tolist())
                                           for a, b in zip(plain, idx)))
            rec["s"] = s.clone()
            rec["sel"] = sel.clone()
            self.route_log.append(rec)
        return idx, w

    def moe(self, p, x):
        idx, w = self.route(p, x)
        T = x.shape[0]
        E = self.cfg["n_routed_experts"]
        dense_w = torch.zeros(T, E, dtype=x.dtype)
        dense_w.scatter_(1, idx, w)
        out = torch.zeros_like(x)
        for e in range(E):
            rows = (dense_w[:, e] != 0).nonzero().flatten()
            if rows.numel():
                out[rows] += dense_w[rows, e:e + 1] * self.swiglu(x[rows], p + "experts.%d." % e)
        if self.cfg.get("n_shared_experts") and "no_shared" not in self.mut:
            out = out + self.swiglu(x, p + "shared_experts.")
        return out

    def ffn(self, layer, x):
        p = "model.layers.%d.mlp." % layer
        return self.moe(p, x) if self.is_moe(layer) else self.swiglu(x, p)

    # ---------------------------------------------------------------- MLA
    def _q(self, a, x):
        if self.rq:
            cq = self.rmsnorm(self.lin(x, a + "q_a_proj.weight"), a + "q_a_layernorm.weight")
            q = self.lin(cq, a + "q_b_proj.weight")
        else:
            q = self.lin(x, a + "q_proj.weight")
        q = q.view(x.shape[0], self.H, self.nope + self.rope_dim)
        if "q_rope_first" in self.mut:
            return q[..., self.rope_dim:], q[..., :self.rope_dim]
        return q[..., :self.nope], q[..., self.nope:]

    def _kv_a(self, a, x):
        kv = self.lin(x, a + "kv_a_proj_with_mqa.weight")
        if "kpe_first" in self.mut:
            kv = torch.cat([kv[:, self.rope_dim:], kv[:, :self.rope_dim]], dim=-1)
        ckv = self.rmsnorm(kv[:, :self.rkv], a + "kv_a_layernorm.weight")
        return ckv, kv[:, self.rkv:]

    def attn_naive(self, layer, x, pos):
        """x: [T, d] (already input_layernorm'ed), causal over the T rows."""
        a = "model.layers.%d.self_attn." % layer
        T = x.shape[0]
        q_nope, q_pe = self._q(a, x)
        q_pe = self.rope(q_pe, pos)
        ckv, k_pe = self._kv_a(a, x)
        k_pe = self.rope(k_pe, pos)                                    # [T, rope]
        kv = self.lin(ckv, a + "kv_b_proj.weight").view(T, self.H, self.nope + self.vd)
        k_nope, v = kv[..., :self.nope], kv[..., self.nope:]
        if "kvb_v_first" in self.mut:
            v, k_nope = kv[..., :self.vd], kv[..., self.vd:]
        q = torch.cat([q_nope, q_pe], dim=-1)                          # [T,H,dq]
        k = torch.cat([k_nope, k_pe[:, None, :].expand(T, self.H, self.rope_dim)], -1)
        scores = torch.einsum("ihd,jhd->hij", q, k) * self.scale
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(causal[None], float("-inf"))
        p = torch.softmax(scores, dim=-1)
        o = torch.einsum("hij,jhd->ihd", p, v).reshape(T, self.H * self.vd)
        return self.lin(o, a + "o_proj.weight")

    def attn_absorbed_step(self, layer, x, pos, cache):
        """One token x [1, d] at integer position pos; cache: dict with lists
        'c' (normalised c_kv) and 'pe' (roped k_pe) -- the only things kept."""
        a = "model.layers.%d.self_attn." % layer
        pos_t = torch.tensor([pos])
        q_nope, q_pe = self._q(a, x)                                   # [1,H,*]
        q_pe = self.rope(q_pe, pos_t)[0]                               # [H, rope]
        ckv, k_pe = self._kv_a(a, x)
        cache["c"].append(ckv[0])
        cache["pe"].append(self.rope(k_pe, pos_t)[0])
        C = torch.stack(cache["c"])                                    # [t, r]
        P = torch.stack(cache["pe"])                                   # [t, rope]
        wkvb = self.W[a + "kv_b_proj.weight"].view(self.H, self.nope + self.vd, self.rkv)
        wk, wv = wkvb[:, :self.nope, :], wkvb[:, self.nope:, :]
        q_lat = torch.einsum("hn,hnr->hr", q_nope[0], wk)              # [H, r]
        scores = (q_lat @ C.T + q_pe @ P.T) * self.scale               # [H, t]
        p = torch.softmax(scores, dim=-1)
        o_lat = p @ C                                                  # [H, r]
        o = torch.einsum("hr,hvr->hv", o_lat, wv).reshape(1, self.H * self.vd)
        return self.lin(o, a + "o_proj.weight")

    # ---------------------------------------------------------------- blocks
    def block(self, layer, h, pos):
        p = "model.layers.%d." % layer
        h = h + self.attn_naive(layer, self.rmsnorm(h, p + "input_layernorm.weight"), pos)
        h = h + self.ffn(layer, self.rmsnorm(h, p + "post_attention_layernorm.weight"))
        return h

    def block_step(self, layer, h, pos, cache):
        p = "model.layers.%d." % layer
        h = h + self.attn_absorbed_step(
            layer, self.rmsnorm(h, p + "input_layernorm.weight"), pos, cache)
        h = h + self.ffn(layer, self.rmsnorm(h, p + "post_attention_layernorm.weight"))
        return h

    def mtp_input(self, tok_next, h_normed, first_is_pos0=True):
        """tok_next: [n] ids t_{i+1}; h_normed: [n, d] main hidden after model.norm."""
        p = "model.layers.%d." % self.L
        emb = "model.embed_tokens.weight" if "mtp_main_embed_head" in self.mut \
            else p + "embed_tokens.weight"
        e = self.W[emb][tok_next]
        if "mtp_zero_pos0" in self.mut and first_is_pos0:
            e = e.clone()
            e[0] = 0
        parts = [self.rmsnorm(e, p + "enorm.weight"),
                 self.rmsnorm(h_normed, p + "hnorm.weight")]
        if "mtp_swap_concat" in self.mut:
            parts = parts[::-1]
        return self.lin(torch.cat(parts, dim=-1), p + "eh_proj.weight")

    def mtp_head(self, x):
        p = "model.layers.%d.shared_head." % self.L
        head = "lm_head.weight" if "mtp_main_embed_head" in self.mut else p + "head.weight"
        return self.lin(self.rmsnorm(x, p + "norm.weight"), head)

    # ---------------------------------------------------------------- forward
    def forward(self, ids):
        """Prefill, naive attention.  -> (logits [T,V], mtp logits [T-1,V] or None)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        T = ids.shape[0]
        pos = torch.arange(T)
        h = self.W["model.embed_tokens.weight"][ids]
        for layer in range(self.L):
            h = self.block(layer, h, pos)
        hn = self.rmsnorm(h, "model.norm.weight")
        logits = self.lin(hn, "lm_head.weight")
        mtp = None
        if self.has_mtp and T >= 2:
            hin = h if "mtp_h_before_norm" in self.mut else hn
            x = self.mtp_input(ids[1:], hin[:-1])
            x = self.block(self.L, x, torch.arange(T - 1))
            mtp = self.mtp_head(x)
        return logits, mtp

    def forward_incremental(self, ids):
        """Token by token through c_kv/k_pe caches, absorbed attention."""
        ids = [int(t) for t in ids]
        T = len(ids)
        caches = [{"c": [], "pe": []} for _ in range(self.L + 1)]
        rows, mtp_rows = [], []
        prev_hn = None
        for t in range(T):
            h = self.W["model.embed_tokens.weight"][ids[t]][None, :]
            for layer in range(self.L):
                h = self.block_step(layer, h, t, caches[layer])
            hn = self.rmsnorm(h, "model.norm.weight")
            rows.append(self.lin(hn, "lm_head.weight"))
            if self.has_mtp and t >= 1:
                x = self.mtp_input(torch.tensor([ids[t]]), prev_hn, first_is_pos0=(t == 1))
                x = self.block_step(self.L, x, t - 1, caches[self.L])
                mtp_rows.append(self.mtp_head(x))
            prev_hn = hn
        logits = torch.cat(rows)
        mtp = torch.cat(mtp_rows) if mtp_rows else None
        return logits, mtp


# -------------------------------------------------------------------- checks

def rel_err(a, b):
    """max|a - b| / max|b| (b is the reference)."""
    a = torch.as_tensor(a, dtype=DT)
    b = torch.as_tensor(b, dtype=DT)
    return float((a - b).abs().max() / b.abs().max())


def route_loop(cfg, s, sel, k):
    """Plain-Python re-implementation of expert selection for one token (used
    to cross-check the vectorised `route`).  s, sel: python float lists."""
    method = topk_method_of(cfg)
    E = len(s)
    G = cfg.get("n_group") or 1
    TG = cfg.get("topk_group") or G
    allowed = list(range(E))
    if method != "greedy" and G > 1:
        gsz = E // G
        gsc = []
        for g in range(G):
            vals = sorted(sel[g * gsz:(g + 1) * gsz], reverse=True)
            gsc.append(vals[0] + vals[1] if method == "noaux_tc" else vals[0])
        best = sorted(range(G), key=lambda g: -gsc[g])[:TG]
        allowed = [e for e in range(E) if e // gsz in best]
    return set(sorted(allowed, key=lambda e: -sel[e])[:k])


def rope_complex_check(ref, T=7):
    """RoPE via complex multiplication (official style) and via the Hugging
    Face permute + rotate_half form must agree with our interleaved RoPE."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(T, 3, ref.rope_dim, generator=g)
    k = torch.randn(T, ref.rope_dim, generator=g)
    pos = torch.arange(T) + 3
    mine_q, mine_k = ref.rope(q, pos), ref.rope(k, pos)
    ang = pos.to(ref.dt)[:, None] * ref.inv_freq[None, :]
    z = torch.polar(torch.ones_like(ang), ang) * ref.cs_mult          # [T, d/2]
    cq = torch.view_as_real(torch.view_as_complex(q.reshape(T, 3, -1, 2).contiguous())
                            * z[:, None, :]).reshape(T, 3, -1)
    e1 = float((cq - mine_q).abs().max())
    # HF: de-interleave ([x0,x2,..,x1,x3,..]), then x*cos + rotate_half(x)*sin
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos() * ref.cs_mult, emb.sin() * ref.cs_mult

    def hf(x, cos, sin):
        x = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    hq = hf(q, cos[:, None, :], sin[:, None, :])
    hk = hf(k, cos, sin)
    e2 = float((torch.einsum("ihd,jd->hij", hq, hk)
                - torch.einsum("ihd,jd->hij", mine_q, mine_k)).abs().max())
    return max(e1, e2)


def self_check(cfg, weights, ids, tol=1e-10):
    """Naive prefill vs absorbed incremental (+ RoPE and routing cross-checks).
    -> dict of measured numbers; raises AssertionError on failure."""
    ref = Reference(cfg, weights)
    ref.route_log = []
    logits, mtp = ref.forward(ids)
    log = ref.route_log
    ref.route_log = None
    inc_logits, inc_mtp = ref.forward_incremental(ids)
    out = {"main_naive_vs_absorbed": rel_err(inc_logits, logits)}
    assert out["main_naive_vs_absorbed"] <= tol, out
    if mtp is not None:
        out["mtp_naive_vs_absorbed"] = rel_err(inc_mtp, mtp)
        assert out["mtp_naive_vs_absorbed"] <= tol, out
        assert mtp.shape[0] == len(ids) - 1
    out["rope_forms"] = rope_complex_check(ref)
    assert out["rope_forms"] <= 1e-12, out
    # routing: vectorised selection vs plain-Python loop
    k = cfg.get("num_experts_per_tok")
    for rec in log:
        for t in range(rec["s"].shape[0]):
            want = route_loop(cfg, rec["s"][t].tolist(), rec["sel"][t].tolist(), k)
            got = set(rec["idx"][t].tolist())
            assert want == got, (rec["layer"], t, want, got)
    return out, logits, mtp, log
