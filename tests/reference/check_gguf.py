#!/usr/bin/python3
"""`dsv3 convert --to gguf` and `dsv3 logits -m FILE.gguf` against an independent GGUF reader.

    /usr/bin/python3 tests/reference/check_gguf.py --dsv3 build/dsv3 --workdir DIR

A tiny BF16 checkpoint (with a trained tokenizer) is converted to GGUF with --type bf16 and
--type q8_0. This script's own GGUF reader then checks each file the way llama.cpp's
gguf.cpp and its deepseek2 loader read it:
  - layout: magic, version 3, general.alignment (a uint32, default 32), the data section
    and every tensor offset aligned, tensors packed in file order, the file ending with the
    last tensor's padding, unique names under 64 bytes;
  - metadata: every deepseek2.* key llama.cpp reads, with the value type it reads it as
    and the value the config implies; the tokenizer.ggml.* keys;
  - tensors: exactly the names and ggml shapes llama.cpp's deepseek2 loader asks for
    (attn_k_b / attn_v_b, stacked experts, exp_probs_b, nextn MTP tensors), with values
    decoded here (F32, F16, BF16, Q8_0) equal to the checkpoint's: exactly for BF16, F16
    and F32, within the Q8_0 rounding bound (d/2 + 127 |d - f16(d)| per value) for Q8_0.
Then `dsv3 logits` (main and MTP, prefill and incremental) of the BF16 file equals the
checkpoint's bit for bit. The Q8_0 file computes the model whose weights are its Q8_0-rounded
values (within the bound above): its logits equal those of an F32 checkpoint written here
from the values this script decoded (d * q is exact in F32) to TWIN_TOL of the largest logit
(not bit for bit: dsv3 applies the Q8_0 file's attn_k_b as it is stored, transposed, so that
product sums in another order), and they stay within Q8_TOL of the largest source logit. The checks are shown able to fail: a
copy of each file with one weight nudged is run too, and must break them. Last, with the
tokenizer files beside it, `dsv3 generate` from the BF16 file gives the checkpoint's text.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_checkpoint as mc  # noqa: E402

# Logits of the Q8_0 file stay within this fraction of the source's largest |logit|
# (measured on this model and these ids: 1.0%). A loose bound by nature: a rounded weight
# can flip an expert choice and move a logit by far more; the check against the
# F32 twin is the sharp one: FP32 rounding of sums in another order only (measured 1e-7
# of the largest logit; the nudged weights below move the logits by 0.25 of it).
Q8_TOL = 0.05
TWIN_TOL = 1e-6
IDS = [1, 5, 9, 200, 3, 7, 100, 511, 42, 17, 8, 250]

# GGUF value types: struct format of each scalar type.
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30


class Gguf:
    """Reads a whole GGUF file, failing on anything llama.cpp's gguf.cpp would refuse."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.raw = f.read()
        self.pos = 0
        assert self.take(4) == b"GGUF", path + ": magic"
        self.version = self.unpack("<I")
        assert self.version == 3, "version %d" % self.version
        n_tensors, n_kv = self.unpack("<q"), self.unpack("<q")
        self.kv = {}  # key -> (type, element type or None, value), in file order
        for _ in range(n_kv):
            key = self.string()
            assert key and key not in self.kv, "empty or repeated key " + key
            self.kv[key] = self.value(self.unpack("<I"))
        alignment = self.kv.get("general.alignment", (4, None, 32))
        assert alignment[0] == 4, "general.alignment must be a uint32"
        self.alignment = alignment[2]
        self.tensors = []  # (name, ggml type, ne, offset), in file order
        for _ in range(n_tensors):
            name = self.string()
            assert 0 < len(name.encode()) < 64, "tensor name length: " + name
            n_dims = self.unpack("<I")
            assert n_dims <= 4, name
            ne = [self.unpack("<q") for _ in range(n_dims)]
            self.tensors.append((name, self.unpack("<I"), ne, self.unpack("<Q")))
        assert len({t[0] for t in self.tensors}) == len(self.tensors), "repeated tensor names"
        self.data_start = -(-self.pos // self.alignment) * self.alignment
        expected = 0
        for name, ggml_type, ne, offset in self.tensors:
            assert offset == expected and offset % self.alignment == 0, "%s at %d, expected %d" % (name, offset, expected)
            expected = -(-(offset + self.nbytes(ggml_type, ne)) // self.alignment) * self.alignment
        assert len(self.raw) == self.data_start + expected, "file size %d, expected %d" % (
            len(self.raw), self.data_start + expected)

    def take(self, n):
        assert self.pos + n <= len(self.raw), "truncated"
        b = self.raw[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.unpack("<Q")).decode("utf-8")

    def value(self, t):
        if t == STRING:
            return (t, None, self.string())
        if t == ARRAY:
            element, n = self.unpack("<I"), self.unpack("<Q")
            return (t, element, [self.value(element)[2] for _ in range(n)])
        return (t, None, self.unpack(SCALARS[t]))

    @staticmethod
    def nbytes(ggml_type, ne):
        n = int(np.prod(ne))
        return {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_BF16: 2 * n, GGML_Q8_0: n // 32 * 34}[ggml_type]

    def tensor_bytes(self, name):
        for tname, ggml_type, ne, offset in self.tensors:
            if tname == name:
                start = self.data_start + offset
                return ggml_type, ne, start, self.raw[start:start + self.nbytes(ggml_type, ne)]
        raise KeyError(name)

    def decoded(self, name):
        """-> (ggml type, float64 array shaped like PyTorch: reversed ne, Q8_0 scales or None)."""
        ggml_type, ne, _, buf = self.tensor_bytes(name)
        shape = tuple(reversed(ne))
        if ggml_type == GGML_Q8_0:
            blocks = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 34)
            d = blocks[:, :2].copy().view("<f2").astype(np.float64)
            q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
            return ggml_type, (d * q).reshape(shape), d.reshape(-1)
        decoded = mc.decode_bytes(buf, {GGML_F32: "F32", GGML_F16: "F16", GGML_BF16: "BF16"}[ggml_type], shape)
        return ggml_type, decoded, None


def expected_metadata(cfg, has_tokenizer):
    """key -> (GGUF type, value) of what llama.cpp's deepseek2 loader reads."""
    u32, f32 = 4, 6
    n_layer, nextn = cfg["num_hidden_layers"], cfg["num_nextn_predict_layers"]
    a = "deepseek2."
    m = {
        "general.architecture": (STRING, "deepseek2"),
        a + "block_count": (u32, n_layer + nextn),
        a + "nextn_predict_layers": (u32, nextn),
        a + "context_length": (u32, cfg["max_position_embeddings"]),
        a + "embedding_length": (u32, cfg["hidden_size"]),
        a + "feed_forward_length": (u32, cfg["intermediate_size"]),
        a + "attention.head_count": (u32, cfg["num_attention_heads"]),
        a + "attention.head_count_kv": (u32, 1),
        a + "rope.freq_base": (f32, np.float32(cfg["rope_theta"])),
        a + "attention.layer_norm_rms_epsilon": (f32, np.float32(cfg["rms_norm_eps"])),
        a + "expert_count": (u32, cfg["n_routed_experts"]),
        a + "expert_used_count": (u32, cfg["num_experts_per_tok"]),
        a + "expert_group_count": (u32, cfg["n_group"]),
        a + "expert_group_used_count": (u32, cfg["topk_group"]),
        a + "expert_gating_func": (u32, 2),  # sigmoid
        a + "leading_dense_block_count": (u32, cfg["first_k_dense_replace"]),
        a + "vocab_size": (u32, cfg["vocab_size"]),
        a + "attention.q_lora_rank": (u32, cfg["q_lora_rank"]),
        a + "attention.kv_lora_rank": (u32, cfg["kv_lora_rank"]),
        a + "attention.key_length": (u32, cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]),
        a + "attention.value_length": (u32, cfg["kv_lora_rank"]),
        a + "attention.key_length_mla": (u32, cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]),
        a + "attention.value_length_mla": (u32, cfg["v_head_dim"]),
        a + "expert_feed_forward_length": (u32, cfg["moe_intermediate_size"]),
        a + "expert_shared_count": (u32, cfg["n_shared_experts"]),
        a + "expert_weights_scale": (f32, np.float32(cfg["routed_scaling_factor"])),
        a + "expert_weights_norm": (7, True),
        a + "rope.dimension_count": (u32, cfg["qk_rope_head_dim"]),
    }
    if has_tokenizer:
        m["tokenizer.ggml.model"] = (STRING, "gpt2")
        m["tokenizer.ggml.pre"] = (STRING, "deepseek-v3")
        m["tokenizer.ggml.bos_token_id"] = (u32, cfg["bos_token_id"])
        m["tokenizer.ggml.eos_token_id"] = (u32, cfg["eos_token_id"])
    return m


def expected_tensors(cfg):
    """GGUF name -> (ggml ne, HF name or None), as llama.cpp's deepseek2 loader asks for them."""
    d, v = cfg["hidden_size"], cfg["vocab_size"]
    h, nope, rope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    ql, kl, ff, ffe = cfg["q_lora_rank"], cfg["kv_lora_rank"], cfg["intermediate_size"], cfg["moe_intermediate_size"]
    ne_exp, n_sh = cfg["n_routed_experts"], cfg["n_shared_experts"]
    n_layer = cfg["num_hidden_layers"]
    t = {"token_embd.weight": ([d, v], "model.embed_tokens.weight"),
         "output_norm.weight": ([d], "model.norm.weight"),
         "output.weight": ([d, v], "lm_head.weight")}
    for i in range(n_layer + cfg["num_nextn_predict_layers"]):
        b, p = "blk.%d." % i, "model.layers.%d." % i
        t[b + "attn_norm.weight"] = ([d], p + "input_layernorm.weight")
        t[b + "attn_q_a_norm.weight"] = ([ql], p + "self_attn.q_a_layernorm.weight")
        t[b + "attn_kv_a_norm.weight"] = ([kl], p + "self_attn.kv_a_layernorm.weight")
        t[b + "attn_q_a.weight"] = ([d, ql], p + "self_attn.q_a_proj.weight")
        t[b + "attn_q_b.weight"] = ([ql, h * (nope + rope)], p + "self_attn.q_b_proj.weight")
        t[b + "attn_kv_a_mqa.weight"] = ([d, kl + rope], p + "self_attn.kv_a_proj_with_mqa.weight")
        t[b + "attn_k_b.weight"] = ([nope, kl, h], None)
        t[b + "attn_v_b.weight"] = ([kl, vd, h], None)
        t[b + "attn_output.weight"] = ([h * vd, d], p + "self_attn.o_proj.weight")
        t[b + "ffn_norm.weight"] = ([d], p + "post_attention_layernorm.weight")
        if i < cfg["first_k_dense_replace"]:
            for proj, ne in (("gate", [d, ff]), ("down", [ff, d]), ("up", [d, ff])):
                t[b + "ffn_%s.weight" % proj] = (ne, p + "mlp.%s_proj.weight" % proj)
        else:
            t[b + "ffn_gate_inp.weight"] = ([d, ne_exp], p + "mlp.gate.weight")
            t[b + "exp_probs_b.bias"] = ([ne_exp], p + "mlp.gate.e_score_correction_bias")
            for proj, ne in (("gate", [d, ffe, ne_exp]), ("down", [ffe, d, ne_exp]), ("up", [d, ffe, ne_exp])):
                t[b + "ffn_%s_exps.weight" % proj] = (ne, None)
            for proj, ne in (("gate", [d, ffe * n_sh]), ("down", [ffe * n_sh, d]), ("up", [d, ffe * n_sh])):
                t[b + "ffn_%s_shexp.weight" % proj] = (ne, p + "mlp.shared_experts.%s_proj.weight" % proj)
        if i >= n_layer:
            t[b + "nextn.eh_proj.weight"] = ([2 * d, d], p + "eh_proj.weight")
            t[b + "nextn.enorm.weight"] = ([d], p + "enorm.weight")
            t[b + "nextn.hnorm.weight"] = ([d], p + "hnorm.weight")
            t[b + "nextn.embed_tokens.weight"] = ([d, v], p + "embed_tokens.weight")
            t[b + "nextn.shared_head_head.weight"] = ([d, v], p + "shared_head.head.weight")
            t[b + "nextn.shared_head_norm.weight"] = ([d], p + "shared_head.norm.weight")
    return t


def source_value(cfg, weights, name, hf):
    """The checkpoint's values for a GGUF tensor, in the GGUF's (reversed-ne) layout."""
    if hf is not None:
        return weights[hf]
    layer = int(name.split(".")[1])
    p = "model.layers.%d." % layer
    h, nope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    if name.endswith("attn_k_b.weight") or name.endswith("attn_v_b.weight"):
        kv_b = weights[p + "self_attn.kv_b_proj.weight"].reshape(h, nope + vd, -1)
        if "k_b" in name:
            return kv_b[:, :nope, :].transpose(0, 2, 1)  # [h][kv_lora][nope]
        return kv_b[:, nope:, :]                          # [h][v][kv_lora]
    proj = name.split(".")[2].split("_")[1]  # ffn_gate_exps -> gate
    return np.stack([weights[p + "mlp.experts.%d.%s_proj.weight" % (e, proj)]
                     for e in range(cfg["n_routed_experts"])])


def check_file(g, cfg, weights, requested, has_tokenizer, errors):
    for key, (t, value) in expected_metadata(cfg, has_tokenizer).items():
        if key not in g.kv:
            errors.append("%s: missing %s" % (g.path, key))
        elif g.kv[key][0] != t or g.kv[key][2] != value:
            errors.append("%s: %s is %r, expected type %d value %r" % (g.path, key, g.kv[key], t, value))
    if has_tokenizer:
        for key, element in (("tokenizer.ggml.tokens", STRING), ("tokenizer.ggml.token_type", 5),
                             ("tokenizer.ggml.merges", STRING)):
            if g.kv.get(key, (None, None))[:2] != (ARRAY, element):
                errors.append("%s: %s is not an array of type %d" % (g.path, key, element))
        if len(g.kv["tokenizer.ggml.tokens"][2]) != cfg["vocab_size"]:
            errors.append("%s: tokenizer.ggml.tokens does not have vocab_size entries" % g.path)
    expected = expected_tensors(cfg)
    names = [t[0] for t in g.tensors]
    if set(names) != set(expected):
        errors.append("%s: tensors differ from llama.cpp's list: extra %s, missing %s" % (
            g.path, sorted(set(names) - set(expected))[:5], sorted(set(expected) - set(names))[:5]))
        return
    for name, ggml_type, ne, _ in g.tensors:
        want_ne, hf = expected[name]
        if ne != want_ne:
            errors.append("%s: %s has ne %s, llama.cpp expects %s" % (g.path, name, ne, want_ne))
            continue
        two_d = len(ne) > 1 and not name.endswith("ffn_gate_inp.weight")
        want_type = GGML_F32 if not two_d else requested if requested != GGML_Q8_0 or ne[0] % 32 == 0 else GGML_F16
        if ggml_type != want_type:
            errors.append("%s: %s has ggml type %d, expected %d" % (g.path, name, ggml_type, want_type))
        _, got, scales = g.decoded(name)
        src = source_value(cfg, weights, name, hf)
        if ggml_type == GGML_Q8_0:
            blocks = src.reshape(-1, 32)
            d_exact = np.abs(blocks).max(axis=1) / 127
            bound = 0.5 * d_exact + 127 * np.abs(d_exact - scales) + 1e-12
            excess = (np.abs(blocks - got.reshape(-1, 32)) - bound[:, None]).max()
            if excess > 0:
                errors.append("%s: %s exceeds the Q8_0 rounding bound by %g" % (g.path, name, excess))
        else:
            want = src.astype(np.float16).astype(np.float64) if ggml_type == GGML_F16 else src
            if not np.array_equal(got, want):
                errors.append("%s: %s differs from the checkpoint (max %g)" % (g.path, name, np.abs(got - want).max()))


def f32_twin(g, cfg, src, out_dir):
    """An F32 checkpoint holding the values decoded from GGUF file g, under the HF names."""
    tensors = {}
    h, nope, vd = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    for name, (_, hf) in expected_tensors(cfg).items():
        values = g.decoded(name)[1]
        p = "model.layers.%s." % name.split(".")[1] if name.startswith("blk.") else ""
        if hf is not None:
            tensors[hf] = values
        elif name.endswith("attn_k_b.weight"):
            v_b = g.decoded(name.replace("attn_k_b", "attn_v_b"))[1]
            kv_b = np.concatenate([values.transpose(0, 2, 1), v_b], axis=1)  # [h][nope + v][kv_lora]
            tensors[p + "self_attn.kv_b_proj.weight"] = kv_b.reshape(h * (nope + vd), -1)
        elif "_exps" in name:
            proj = name.split(".")[2].split("_")[1]
            for e in range(cfg["n_routed_experts"]):
                tensors[p + "mlp.experts.%d.%s_proj.weight" % (e, proj)] = values[e]
    os.makedirs(out_dir)
    shutil.copy(os.path.join(src, "config.json"), out_dir)
    mc.write_safetensors(os.path.join(out_dir, "model.safetensors"),
                         [(k, "F32", v.shape, v.astype("<f4").tobytes()) for k, v in tensors.items()])
    return out_dir


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def logits(binary, model, out_dir, tag, incremental=False):
    main, mtp = os.path.join(out_dir, tag + ".npy"), os.path.join(out_dir, tag + "_mtp.npy")
    cmd = [binary, "logits", "-m", model, "--ids", " ".join(map(str, IDS)), "-o", main, "--mtp", mtp]
    run(cmd + (["--incremental"] if incremental else []))
    return np.load(main), np.load(mtp)


def nudged_copy(g, name, out, scale):
    """A copy of the file with tensor `name` (F32 or BF16) multiplied by `scale`."""
    ggml_type, ne, start, buf = g.tensor_bytes(name)
    raw = bytearray(g.raw)
    if ggml_type == GGML_F32:
        values = np.frombuffer(buf, dtype="<f4") * np.float32(scale)
        raw[start:start + len(buf)] = values.astype("<f4").tobytes()
    else:
        bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32) * np.float32(scale)
        raw[start:start + len(buf)] = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    with open(out, "wb") as f:
        f.write(raw)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsv3", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    w = args.workdir
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    src = os.path.join(w, "src")
    run([args.dsv3, "init", "--preset", "tiny", "--dtype", "bf16", "--seed", "3", "-o", src])
    run([args.dsv3, "tokenizer-train", "--data", os.path.abspath(__file__), "--vocab-size", str(512), "-o", src])
    cfg, weights = mc.load_checkpoint(src)
    errors = []

    files = {}
    for kind, ggml_type in (("bf16", GGML_BF16), ("q8_0", GGML_Q8_0)):
        path = os.path.join(w, kind + ".gguf")
        run([args.dsv3, "convert", "-m", src, "-o", path, "--to", "gguf", "--type", kind])
        files[kind] = Gguf(path)
        check_file(files[kind], cfg, weights, ggml_type, True, errors)
    again = subprocess.run([args.dsv3, "convert", "-m", src, "-o", files["bf16"].path, "--to", "gguf"],
                           capture_output=True, text=True)
    if again.returncode == 0 or "exists" not in again.stderr:
        errors.append("converting onto an existing file was not refused: " + again.stderr)

    ref_main, ref_mtp = logits(args.dsv3, src, w, "src")
    for incremental in (False, True):
        main_l, mtp_l = logits(args.dsv3, files["bf16"].path, w, "bf16", incremental)
        if not (np.array_equal(main_l, ref_main) and np.array_equal(mtp_l, ref_mtp)):
            errors.append("bf16 GGUF logits (incremental=%s) differ from the checkpoint's: max %g" % (
                incremental, max(np.abs(main_l - ref_main).max(), np.abs(mtp_l - ref_mtp).max())))
    scale = np.abs(ref_main).max()
    q_main, q_mtp = logits(args.dsv3, files["q8_0"].path, w, "q8_0")
    twin_main, twin_mtp = logits(args.dsv3, f32_twin(files["q8_0"], cfg, src, os.path.join(w, "q8_0_twin")), w, "twin")
    twin_err = max(np.abs(q_main - twin_main).max(), np.abs(q_mtp - twin_mtp).max()) / scale
    print("q8_0 GGUF against its F32 twin: max |logit difference| = %.3g of max |logit| (bound %g)"
          % (twin_err, TWIN_TOL))
    if not twin_err <= TWIN_TOL:
        errors.append("q8_0 GGUF logits differ from its F32 twin's by %g of max |logit|" % twin_err)
    q_err = max(np.abs(q_main - ref_main).max(), np.abs(q_mtp - ref_mtp).max()) / scale
    print("q8_0 GGUF: max |logit difference| = %.3g of max |logit| (bound %g)" % (q_err, Q8_TOL))
    if not 0 < q_err <= Q8_TOL:
        errors.append("q8_0 GGUF logits differ by %g of max |logit|, expected (0, %g]" % (q_err, Q8_TOL))

    # The checks can fail: nudged weights must break them.
    nudged = nudged_copy(files["bf16"], "blk.0.attn_q_a.weight", os.path.join(w, "nudged_bf16.gguf"), 1.01)
    if np.array_equal(logits(args.dsv3, nudged, w, "nudged_bf16")[0], ref_main):
        errors.append("a nudged BF16 weight left the logits bit-identical: the exact check cannot fail")
    nudged = nudged_copy(files["q8_0"], "output_norm.weight", os.path.join(w, "nudged_q8_0.gguf"), 1.25)
    n_err = np.abs(logits(args.dsv3, nudged, w, "nudged_q8_0")[0] - ref_main).max() / scale
    print("nudged q8_0 GGUF: max |logit difference| = %.3g of max |logit|" % n_err)
    if n_err <= Q8_TOL:
        errors.append("a 25%% change of output_norm stayed within the Q8_0 tolerance (%g)" % n_err)
    nudged = nudged_copy(files["q8_0"], "blk.0.attn_kv_a_norm.weight", os.path.join(w, "nudged_twin.gguf"), 1.0001)
    if np.array_equal(logits(args.dsv3, nudged, w, "nudged_twin")[0], twin_main):
        errors.append("a nudged norm weight left the Q8_0 logits bit-identical: the twin check cannot fail")

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, name), w)
    texts = [subprocess.run([args.dsv3, "generate", "-m", m, "-p", "In the beginning", "-n", "12", "--temp", "0"],
                            check=True, capture_output=True).stdout for m in (src, files["bf16"].path)]
    if texts[0] != texts[1]:
        errors.append("generate from the BF16 GGUF gave %r, from the checkpoint %r" % (texts[1], texts[0]))

    for e in errors:
        print("FAIL", e)
    print("check_gguf: %d problems" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
