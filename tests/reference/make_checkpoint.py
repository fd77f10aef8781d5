#!/usr/bin/python3
"""Tiny random DeepSeek-V3-architecture checkpoints in the Hugging Face layout.

Written from the dsv3 spec digest (architecture.md, checkpoint.md); it shares no
code with the C++ engine.  Everything here is numpy only; the safetensors
format (writer and reader), BF16 rounding and the FP8 E4M3 codec are our own.

    /usr/bin/python3 tests/reference/make_checkpoint.py --list
    /usr/bin/python3 tests/reference/make_checkpoint.py --case bf16_base --out DIR

The values STORED in the files are the truth: the reference (dsv3_ref.py)
computes from what `load_checkpoint` decodes, never from the float originals.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------
# dtype codecs
# ----------------------------------------------------------------------------

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F64": 8,
              "I64": 8, "I32": 4, "U8": 1}


def _e4m3_table():
    """Decoded value of each of the 256 OCP E4M3FN codes (NaN for 0x7F/0xFF)."""
    t = np.empty(256, dtype=np.float64)
    for c in range(256):
        sign = -1.0 if c & 0x80 else 1.0
        e = (c >> 3) & 0xF
        m = c & 0x7
        if e == 0xF and m == 0x7:
            t[c] = np.nan
        elif e == 0:
            t[c] = sign * (m / 8.0) * 2.0 ** -6          # subnormal
        else:
            t[c] = sign * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return t


E4M3_TABLE = _e4m3_table()
E4M3_MAX = 448.0
# codes 0x00..0x7E are the non-negative finite values in increasing order
_E4M3_POS = E4M3_TABLE[:0x7F].copy()
assert np.all(np.diff(_E4M3_POS) > 0) and _E4M3_POS[-1] == E4M3_MAX


def e4m3_encode(x):
    """Round float values to the nearest E4M3FN code (ties to the even code),
    saturating at +-448.  Returns uint8 codes with x's shape."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), E4M3_MAX)
    hi = np.searchsorted(_E4M3_POS, a, side="left")        # first value >= a
    hi = np.minimum(hi, 0x7E)
    lo = np.maximum(hi - 1, 0)
    dlo = a - _E4M3_POS[lo]
    dhi = _E4M3_POS[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo)
    code = np.where(a == _E4M3_POS[hi], hi, code)            # exact hits
    code = code.astype(np.uint8)
    neg = (x < 0) & (code != 0)
    code = np.where(neg, code | 0x80, code).astype(np.uint8)
    return code


def e4m3_decode(codes):
    return E4M3_TABLE[np.asarray(codes, dtype=np.uint8)]


def bf16_encode(x):
    """float -> uint16 BF16 bits: float32 first, then round-to-nearest-even of
    the float32 bit pattern."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


def bf16_decode(bits):
    u = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16
    return u.view(np.float32).astype(np.float64)


def fp8_quantize_blocks(w, block=128, divide_in_float32=False):
    """Block-wise FP8 quantisation of a 2-D weight: scale_inv[i][j] =
    amax(block)/448 (zero-padded partial blocks simply have fewer entries),
    stored as F32; codes = e4m3(w / scale_inv), the quotient exact or, with
    divide_in_float32, rounded to FP32 first as GPU kernels compute it.
    Returns (codes, scale_inv)."""
    rows, cols = w.shape
    br, bc = -(-rows // block), -(-cols // block)
    scale = np.empty((br, bc), dtype=np.float32)
    codes = np.empty((rows, cols), dtype=np.uint8)
    for i in range(br):
        for j in range(bc):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block]
            amax = float(np.max(np.abs(blk))) if blk.size else 0.0
            s = np.float32(amax / E4M3_MAX) if amax > 0 else np.float32(1.0)
            scale[i, j] = s
            q = (np.float32(blk) / s) if divide_in_float32 else blk / float(s)
            codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = e4m3_encode(q)
    return codes, scale


def fp8_dequantize(codes, scale_inv, block=128):
    rows, cols = codes.shape
    full = np.repeat(np.repeat(np.asarray(scale_inv, np.float64), block, 0),
                     block, 1)[:rows, :cols]
    return e4m3_decode(codes) * full


# Deliberately wrong dequantisations, for the sensitivity self-check only.
FP8_LOADER_MUTATIONS = {
    "fp8_divide": "w = q / scale_inv",
    "fp8_floor_blocks": "scale row stride floor(cols/128) (whole blocks assumed)",
    "fp8_transposed": "scale_inv indexed [n/128][m/128] (flat, transposed)",
}


def fp8_dequantize_wrong(codes, scale_inv, mode, block=128):
    rows, cols = codes.shape
    s = np.asarray(scale_inv, np.float64)
    if mode == "fp8_divide":
        return e4m3_decode(codes) / np.repeat(np.repeat(s, block, 0), block, 1)[:rows, :cols]
    flat = s.reshape(-1)
    m = np.arange(rows)[:, None] // block
    n = np.arange(cols)[None, :] // block
    if mode == "fp8_floor_blocks":
        idx = m * max(cols // block, 1) + n
    elif mode == "fp8_transposed":
        idx = n * s.shape[0] + m
    else:
        raise ValueError(mode)
    return e4m3_decode(codes) * flat[np.minimum(idx, flat.size - 1)]


def encode_tensor(arr, dtype):
    """-> bytes of `arr` stored as safetensors dtype `dtype` (little endian)."""
    if dtype == "F32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(arr, dtype="<f2").tobytes()
    if dtype == "BF16":
        return np.ascontiguousarray(bf16_encode(arr), dtype="<u2").tobytes()
    if dtype == "F8_E4M3":          # arr must already be uint8 codes
        assert arr.dtype == np.uint8
        return np.ascontiguousarray(arr).tobytes()
    raise ValueError(dtype)


def decode_bytes(buf, dtype, shape):
    """safetensors bytes -> float64 numpy (F8_E4M3: the raw uint8 codes)."""
    n = int(np.prod(shape)) if len(shape) else 1
    if dtype == "F32":
        a = np.frombuffer(buf, dtype="<f4", count=n).astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(buf, dtype="<f2", count=n).astype(np.float64)
    elif dtype == "BF16":
        a = bf16_decode(np.frombuffer(buf, dtype="<u2", count=n))
    elif dtype == "F64":
        a = np.frombuffer(buf, dtype="<f8", count=n).astype(np.float64)
    elif dtype == "F8_E4M3":
        a = np.frombuffer(buf, dtype=np.uint8, count=n).copy()
    else:
        raise ValueError("unsupported dtype " + dtype)
    return a.reshape(shape)


# ----------------------------------------------------------------------------
# safetensors writer / reader
# ----------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes).  Header padded with spaces
    to a multiple of 8 bytes; data packed in list order."""
    header = {}
    off = 0
    for name, dtype, shape, data in tensors:
        n = int(np.prod(shape)) if len(shape) else 1
        assert len(data) == n * DTYPE_SIZE[dtype], (name, dtype, shape, len(data))
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape],
                        "data_offsets": [off, off + len(data)]}
        off += len(data)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for _, _, _, data in tensors:
            f.write(data)
    return 8 + len(hj) + off


def read_safetensors(path):
    """Validating reader: -> (dict name -> (dtype, shape, ndarray), metadata).
    Floats come back as float64; F8_E4M3 as uint8 codes."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(path + ": too short")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(path + ": header length beyond file")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = raw[8 + hlen:]
    meta = header.pop("__metadata__", {})
    spans = []
    out = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], info["shape"]
        b, e = info["data_offsets"]
        n = int(np.prod(shape)) if len(shape) else 1
        if not (0 <= b <= e <= len(data)):
            raise ValueError("%s: %s offsets outside data" % (path, name))
        if e - b != n * DTYPE_SIZE[dtype]:
            raise ValueError("%s: %s size mismatch" % (path, name))
        spans.append((b, e, name))
        out[name] = (dtype, tuple(shape), decode_bytes(data[b:e], dtype, shape))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError("%s: %s overlaps %s" % (path, n0, n1))
    return out, meta


def read_model_tensors(model_dir):
    """All raw tensors of a model directory (single file or index + shards)."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wmap = json.load(f)["weight_map"]
        files = sorted(set(wmap.values()))
        raw = {}
        for fn in files:
            t, _ = read_safetensors(os.path.join(model_dir, fn))
            for k, v in t.items():
                if wmap.get(k) != fn:
                    raise ValueError("%s found in %s but weight_map says %s"
                                     % (k, fn, wmap.get(k)))
                raw[k] = v
        missing = set(wmap) - set(raw)
        if missing:
            raise ValueError("weight_map names missing from shards: %s"
                             % sorted(missing)[:5])
        return raw
    t, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return t


def load_checkpoint(model_dir, fp8_mut=None):
    """-> (config dict, dict name -> float64 numpy weight), FP8 dequantised
    with its `_scale_inv`, everything decoded from the stored bytes.
    fp8_mut: a key of FP8_LOADER_MUTATIONS (sensitivity self-check only)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    raw = read_model_tensors(model_dir)
    block = 128
    qc = cfg.get("quantization_config")
    if qc and "weight_block_size" in qc:
        assert qc["weight_block_size"][0] == qc["weight_block_size"][1]
        block = int(qc["weight_block_size"][0])
    w = {}
    for name, (dtype, shape, arr) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dtype == "F8_E4M3":
            sname = name + "_scale_inv"
            sdt, sshape, s = raw[sname]
            assert sdt == "F32", sname
            exp = (-(-shape[0] // block), -(-shape[1] // block))
            assert tuple(sshape) == exp, (sname, sshape, exp)
            if fp8_mut:
                w[name] = fp8_dequantize_wrong(arr, s, fp8_mut, block)
            else:
                w[name] = fp8_dequantize(arr, s, block)
        else:
            w[name] = arr
    return cfg, w


# ----------------------------------------------------------------------------
# test cases
# ----------------------------------------------------------------------------

BASE = dict(
    vocab_size=320, hidden_size=64, num_hidden_layers=2, first_k_dense_replace=1,
    num_nextn_predict_layers=1, num_attention_heads=4,
    q_lora_rank=48, kv_lora_rank=32,
    qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
    intermediate_size=96, moe_intermediate_size=40,
    n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1,
    n_group=4, topk_group=2, routed_scaling_factor=2.5,
    scoring_func="sigmoid", topk_method="noaux_tc", norm_topk_prob=True,
    rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
    max_position_embeddings=256,
)


def _yarn(factor, orig, mscale, mscale_all_dim, **extra):
    d = {"type": "yarn", "factor": factor, "original_max_position_embeddings": orig,
         "beta_fast": 32, "beta_slow": 1}
    if mscale is not None:
        d["mscale"] = mscale
    if mscale_all_dim is not None:
        d["mscale_all_dim"] = mscale_all_dim
    d.update(extra)
    return d


# name -> (description, config overrides, options)
#   options: weights = bf16 | f32 | f16 | fp8 ; shards = 1 | 2 ; seed ;
#            drop = config keys to leave out of config.json
CASES = {
    "bf16_base": (
        "BF16; q-LoRA; sigmoid+bias noaux_tc, 8 experts in 4 groups, topk_group 2,"
        " top-3; 1 shared expert; no rope scaling; dense layer 0 + MoE layer 1; MTP",
        dict(), dict(weights="bf16", seed=101)),
    "fp8_blocks": (
        "FP8 128x128 blocks with partial edges (hidden 160, widths 200/136, r_kv 136,"
        " r_q 144, v 20 != nope 24); 2 shared experts; YaRN factor 4, orig 16; MTP",
        dict(vocab_size=300, hidden_size=160, num_hidden_layers=2, num_attention_heads=4,
             q_lora_rank=144, kv_lora_rank=136, qk_nope_head_dim=24, qk_rope_head_dim=8,
             v_head_dim=20, intermediate_size=200, moe_intermediate_size=136,
             n_shared_experts=2, rope_scaling=_yarn(4.0, 16, 1.0, 1.0),
             max_position_embeddings=64),
        dict(weights="fp8", seed=202)),
    "fp8_sharded": (
        "FP8 in 2 shards + index (weights and their scale_inv may sit in different"
        " shards); q_lora_rank null; 3 layers (2 dense); width 136; n_group 2; MTP",
        dict(vocab_size=260, hidden_size=136, num_hidden_layers=3, first_k_dense_replace=2,
             num_attention_heads=2, q_lora_rank=None, kv_lora_rank=40,
             intermediate_size=130, moe_intermediate_size=136,
             n_routed_experts=6, num_experts_per_tok=2, n_group=2, topk_group=1,
             routed_scaling_factor=1.5),
        dict(weights="fp8", shards=2, seed=303)),
    "f32_yarn": (
        "F32 weights; YaRN factor 4, orig 256 (fractional ramp), mscale = mscale_all_dim"
        " = 1; q_lora_rank null; n_shared_experts 0; n_group 1; 3 layers; MTP",
        dict(num_hidden_layers=3, q_lora_rank=None, n_shared_experts=0,
             n_group=1, topk_group=1, num_experts_per_tok=2,
             rope_scaling=_yarn(4.0, 256, 1.0, 1.0), max_position_embeddings=1024),
        dict(weights="f32", seed=404)),
    "f16_yarn_mscale": (
        "F16 weights; YaRN factor 4, orig 16, mscale = mscale_all_dim = 0.707;"
        " rope dim 16; q-LoRA; MTP",
        dict(qk_rope_head_dim=16, num_attention_heads=3,
             rope_scaling=_yarn(4.0, 16, 0.707, 0.707), max_position_embeddings=64),
        dict(weights="f16", seed=505)),
    "yarn_mscale_ratio": (
        "BF16; YaRN factor 8, orig 16, mscale 1.0 != mscale_all_dim 0.707 (cos/sin"
        " scaled by their yarn_mscale ratio); rope_theta 500; 1 head; MTP",
        dict(num_attention_heads=1, rope_theta=500.0,
             rope_scaling=_yarn(8.0, 16, 1.0, 0.707), max_position_embeddings=128),
        dict(weights="bf16", seed=606)),
    "v2_softmax_greedy": (
        "DeepSeek-V2-style: softmax scoring, topk_method absent (-> greedy), no bias,"
        " norm_topk_prob false, routed_scaling_factor 1, q_lora_rank null, n_group 1,"
        " 2 shared experts, no MTP; rms_norm_eps 1e-2 (so eps matters)",
        dict(num_nextn_predict_layers=0, q_lora_rank=None, scoring_func="softmax",
             norm_topk_prob=False, routed_scaling_factor=1.0, n_group=1, topk_group=1,
             n_shared_experts=2, num_experts_per_tok=2, rms_norm_eps=1e-2,
             num_hidden_layers=3),
        dict(weights="bf16", seed=707, drop=("topk_method",))),
    "v2_group_limited": (
        "DeepSeek-V2 236B-style: softmax, group_limited_greedy (group max), 12 experts"
        " in 4 groups, topk_group 2, top-4, norm_topk_prob false, scaling 16,"
        " q_lora set, no MTP",
        dict(num_nextn_predict_layers=0, scoring_func="softmax",
             topk_method="group_limited_greedy", n_routed_experts=12, n_group=4,
             topk_group=2, num_experts_per_tok=4, norm_topk_prob=False,
             routed_scaling_factor=16.0, moe_intermediate_size=24),
        dict(weights="bf16", seed=808)),
    "dense_only": (
        "first_k_dense_replace = num_hidden_layers (no MoE in the main model); the MTP"
        " block is still MoE; BF16",
        dict(num_hidden_layers=2, first_k_dense_replace=2),
        dict(weights="bf16", seed=909)),
    "noshared_nomtp": (
        "sigmoid, topk_method absent (-> noaux_tc with bias), norm_topk_prob false,"
        " n_shared_experts null, num_nextn_predict_layers 0, 16 experts in 8 groups,"
        " topk_group 3, top-4, 3 MoE layers",
        dict(num_nextn_predict_layers=0, n_shared_experts=None, norm_topk_prob=False,
             n_routed_experts=16, n_group=8, topk_group=3, num_experts_per_tok=4,
             first_k_dense_replace=0, num_hidden_layers=3, moe_intermediate_size=24,
             routed_scaling_factor=1.0),
        dict(weights="bf16", seed=1010, drop=("topk_method",))),
}

FP8_SUFFIXES = ("q_a_proj.weight", "q_b_proj.weight", "q_proj.weight",
                "kv_a_proj_with_mqa.weight", "kv_b_proj.weight", "o_proj.weight",
                "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def case_names():
    return list(CASES)


def build_config(case):
    desc, over, opts = CASES[case]
    c = dict(BASE)
    c.update(over)
    wt = opts["weights"]
    cfg = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "bos_token_id": 0, "eos_token_id": 1,
        "tie_word_embeddings": False,
        "torch_dtype": {"bf16": "bfloat16", "fp8": "bfloat16", "f32": "float32",
                        "f16": "float16"}[wt],
        "hidden_act": "silu",
        "moe_layer_freq": 1,
        "num_key_value_heads": c["num_attention_heads"],
        "attention_bias": False, "attention_dropout": 0.0,
        "initializer_range": 0.02, "use_cache": True, "ep_size": 1,
        "aux_loss_alpha": 0.001, "seq_aux": True, "pretraining_tp": 1,
    }
    cfg.update(c)
    if wt == "fp8":
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                      "quant_method": "fp8",
                                      "weight_block_size": [128, 128]}
    for k in opts.get("drop", ()):
        cfg.pop(k, None)
    return cfg


def _is_moe_layer(cfg, i):
    """The MTP layer (index num_hidden_layers) is always an MoE block."""
    if i >= cfg["num_hidden_layers"]:
        return True
    return i >= cfg["first_k_dense_replace"] and i % cfg.get("moe_layer_freq", 1) == 0


def default_topk_method(cfg):
    m = cfg.get("topk_method")
    if m:
        return m
    return "noaux_tc" if cfg.get("scoring_func", "softmax") == "sigmoid" else "greedy"


def generate_weights(cfg, rng):
    """-> ordered dict name -> float64 array (the float originals)."""
    d = cfg["hidden_size"]
    V = cfg["vocab_size"]
    H = cfg["num_attention_heads"]
    nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv = cfg["q_lora_rank"], cfg["kv_lora_rank"]
    W = {}

    def lin(name, out_f, in_f, gain=1.0):
        W[name] = rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))

    def norm(name, n):
        W[name] = 1.0 + 0.1 * rng.standard_normal(n)

    def mlp(prefix, width):
        lin(prefix + "gate_proj.weight", width, d)
        lin(prefix + "up_proj.weight", width, d)
        lin(prefix + "down_proj.weight", d, width)

    def block(i):
        p = "model.layers.%d." % i
        norm(p + "input_layernorm.weight", d)
        a = p + "self_attn."
        if rq:
            lin(a + "q_a_proj.weight", rq, d)
            norm(a + "q_a_layernorm.weight", rq)
            lin(a + "q_b_proj.weight", H * (nope + rope), rq)
        else:
            lin(a + "q_proj.weight", H * (nope + rope), d)
        lin(a + "kv_a_proj_with_mqa.weight", rkv + rope, d)
        norm(a + "kv_a_layernorm.weight", rkv)
        lin(a + "kv_b_proj.weight", H * (nope + vd), rkv)
        lin(a + "o_proj.weight", d, H * vd)
        norm(p + "post_attention_layernorm.weight", d)
        m = p + "mlp."
        if _is_moe_layer(cfg, i):
            E = cfg["n_routed_experts"]
            lin(m + "gate.weight", E, d)
            if default_topk_method(cfg) == "noaux_tc":
                W[m + "gate.e_score_correction_bias"] = 0.05 * rng.standard_normal(E)
            for e in range(E):
                mlp(m + "experts.%d." % e, cfg["moe_intermediate_size"])
            if cfg.get("n_shared_experts"):
                mlp(m + "shared_experts.",
                    cfg["n_shared_experts"] * cfg["moe_intermediate_size"])
        else:
            mlp(m, cfg["intermediate_size"])

    W["model.embed_tokens.weight"] = rng.standard_normal((V, d))
    for i in range(cfg["num_hidden_layers"]):
        block(i)
    norm("model.norm.weight", d)
    lin("lm_head.weight", V, d)
    if cfg.get("num_nextn_predict_layers", 0):
        L = cfg["num_hidden_layers"]
        p = "model.layers.%d." % L
        # own random embedding and head, different from the main model's
        W[p + "embed_tokens.weight"] = rng.standard_normal((V, d))
        norm(p + "enorm.weight", d)
        norm(p + "hnorm.weight", d)
        lin(p + "eh_proj.weight", d, 2 * d)
        block(L)
        norm(p + "shared_head.norm.weight", d)
        lin(p + "shared_head.head.weight", V, d)
    return W


def storage_plan(cfg, name, weights_kind):
    """safetensors dtype for tensor `name` ('FP8' means F8_E4M3 + scale_inv)."""
    if name.endswith("e_score_correction_bias"):
        return "F32"
    if weights_kind == "f32":
        return "F32"
    if weights_kind == "f16":
        return "F16"
    if weights_kind == "fp8":
        is_mtp_only = any(s in name for s in (".enorm.", ".hnorm.", ".eh_proj.",
                                               ".shared_head."))
        if name.endswith(FP8_SUFFIXES) and not is_mtp_only and ".mlp.gate." not in name:
            return "FP8"
        return "BF16"
    return "BF16"


def write_checkpoint(case, out_dir):
    """Write config.json + safetensors for `case` into out_dir; returns config."""
    desc, over, opts = CASES[case]
    cfg = build_config(case)
    rng = np.random.default_rng(opts["seed"])
    W = generate_weights(cfg, rng)
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for name, arr in W.items():
        kind = storage_plan(cfg, name, opts["weights"])
        if kind == "FP8":
            # vary the magnitude per 128x128 block so that a wrong block scale
            # shows up as a large error
            r, c = arr.shape
            br, bc = -(-r // 128), -(-c // 128)
            f = np.exp(rng.uniform(-0.7, 0.7, size=(br, bc)))
            arr = arr * np.repeat(np.repeat(f, 128, 0), 128, 1)[:r, :c]
            codes, scale = fp8_quantize_blocks(arr)
            entries.append((name, "F8_E4M3", arr.shape, encode_tensor(codes, "F8_E4M3")))
            entries.append((name + "_scale_inv", "F32", scale.shape,
                            encode_tensor(scale, "F32")))
        else:
            entries.append((name, kind, arr.shape, encode_tensor(arr, kind)))
    shards = opts.get("shards", 1)
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), entries)
    else:
        assign = rng.integers(0, shards, size=len(entries))
        for s in range(shards):     # make sure no shard is empty
            assign[s] = s
        wmap = {}
        total = 0
        for s in range(shards):
            fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            part = [e for e, a in zip(entries, assign) if a == s]
            write_safetensors(os.path.join(out_dir, fn), part)
            for e in part:
                wmap[e[0]] = fn
                total += len(e[3])
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f,
                      indent=2)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print case names")
    ap.add_argument("--case")
    ap.add_argument("--out", help="output model directory")
    a = ap.parse_args(argv)
    if a.list:
        for n in CASES:
            print(n)
        return 0
    if not a.case or not a.out:
        ap.error("--case and --out are required")
    if a.case not in CASES:
        ap.error("unknown case %r (see --list)" % a.case)
    write_checkpoint(a.case, a.out)
    print("wrote %s (%s)" % (a.out, CASES[a.case][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
