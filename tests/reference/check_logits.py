#!/usr/bin/python3
"""Compare `dsv3 logits` against the independent float64 reference.

    /usr/bin/python3 tests/reference/check_logits.py --list
    /usr/bin/python3 tests/reference/check_logits.py --dsv3 build/dsv3 --case bf16_base
    /usr/bin/python3 tests/reference/check_logits.py --dsv3 build/dsv3 --case all
    /usr/bin/python3 tests/reference/check_logits.py --self-check [--case NAME]

For a case: write the tiny checkpoint (deterministic seed per case), pick
12-20 token ids (deterministic; re-drawn while any MoE top-k or group choice in
the reference is within ROUTING_MARGIN of a tie, so FP32 rounding cannot flip
an expert), run

    DSV3 logits -m MODEL --ids "..." -o main.npy [--mtp mtp.npy] [--incremental]

(prefill and incremental), and check, with rel(a, b) = max|a - b| / max|b|
over the whole [T, vocab] array:
    rel(dsv3 main, ref main) <= 1e-4,  rel(dsv3 mtp, ref mtp) <= 1e-4,
    rel(incremental, prefill) <= 1e-5 for main and mtp.

--self-check needs no binary: it builds every checkpoint, re-reads it with our
own safetensors reader (bit-exact against what was meant to be stored), tests
the BF16/E4M3 codecs, and checks the reference against itself (naive prefill
vs absorbed incremental attention to 1e-10, three RoPE formulations, and a
loop re-implementation of the routing).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_checkpoint as mc  # noqa: E402
import dsv3_ref  # noqa: E402

TOL_REF = 1e-4          # dsv3 vs float64 reference
TOL_INC = 1e-5          # dsv3 incremental vs dsv3 prefill
TOL_SELF = 1e-10        # reference naive vs absorbed
ROUTING_MARGIN = 5e-5   # minimum gap at every top-k / top-group decision
BIN_TIMEOUT = 300
VERBOSE = False


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def pick_ids(case, cfg, weights, seed):
    """Deterministic ids for `case` whose routing decisions all have a margin
    >= ROUTING_MARGIN.  -> (ids, ref logits, ref mtp logits, routing log)."""
    rng = np.random.default_rng(seed + 7919)
    V = cfg["vocab_size"]
    method = dsv3_ref.topk_method_of(cfg)
    best = None
    for attempt in range(200):
        T = int(rng.integers(12, 21))
        ids = [int(x) for x in rng.integers(0, V, size=T)]
        ref = dsv3_ref.Reference(cfg, weights)
        ref.route_log = []
        logits, mtp = ref.forward(ids)
        log = ref.route_log
        margin = min([r["margin"] for r in log], default=float("inf"))
        ok = margin >= ROUTING_MARGIN
        if method == "noaux_tc":
            # with every chosen selection score > 0, masking the dropped groups
            # with 0.0 (HF code) or -inf (official code) picks the same experts
            ok = ok and min([r["kth_sel"] for r in log], default=1.0) > 0
        if ok:
            return ids, logits.numpy(), (None if mtp is None else mtp.numpy()), log, attempt
        if best is None or margin > best[0]:
            best = (margin,)
    raise RuntimeError("%s: no token sequence with routing margin >= %g (best %g)"
                       % (case, ROUTING_MARGIN, best[0]))


def routing_summary(log):
    if not log:
        return "no MoE layers"
    margin = min(r["margin"] for r in log)
    n = sum(r["idx"].shape[0] for r in log)
    s = "routing: %d token-choices, min margin %.2e, group-limit changed %d" % (
        n, margin, sum(r["group_changed"] for r in log))
    return s


# ---------------------------------------------------------------- self-check

def codec_checks():
    """Unit checks of our own BF16 and E4M3 codecs."""
    import torch
    t = mc.E4M3_TABLE
    assert t[0x7E] == 448.0 and t[0x38] == 1.0 and t[0x01] == 2.0 ** -9
    assert t[0x08] == 2.0 ** -6 and t[0x07] == 7 * 2.0 ** -9 and t[0xB8] == -1.0
    assert np.isnan(t[0x7F]) and np.isnan(t[0xFF])
    codes = np.array([c for c in range(256) if c not in (0x7F, 0xFF, 0x80)], np.uint8)
    assert np.array_equal(mc.e4m3_encode(t[codes]), codes), "e4m3 round trip"
    pos = t[:0x7F]
    mids = (pos[:-1] + pos[1:]) / 2
    enc = mc.e4m3_encode(mids)
    lo = np.arange(0x7E)
    want = np.where(lo % 2 == 0, lo, lo + 1)
    assert np.array_equal(enc, want.astype(np.uint8)), "e4m3 ties to even"
    wneg = np.where(want == 0, 0, want | 0x80).astype(np.uint8)   # -0 is stored as 0
    assert np.array_equal(mc.e4m3_encode(-mids), wneg)
    assert mc.e4m3_encode(np.array([1e9]))[0] == 0x7E
    assert mc.e4m3_encode(np.array([-500.0]))[0] == 0xFE
    # nearest: random values vs brute force over the table
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000) * np.exp(rng.uniform(-9, 6, 4000))
    x = np.clip(x, -448, 448)
    e = mc.e4m3_encode(x)
    fin = np.where(np.isnan(t), np.inf, t)
    best = np.min(np.abs(fin[None, :] - x[:, None]), axis=1)
    assert np.allclose(np.abs(t[e] - x), best, rtol=0, atol=0), "e4m3 nearest"
    # BF16 vs torch's own round-to-nearest-even conversion
    f = rng.standard_normal(20000).astype(np.float32) * np.float32(3.0)
    bits = f.view(np.uint32)
    f = np.concatenate([f, ((bits & 0xFFFF0000) | 0x8000).view(np.float32),
                        ((bits & 0xFFFF0000) | 0x18000).view(np.float32)])
    ours = mc.bf16_decode(mc.bf16_encode(f))
    theirs = torch.from_numpy(f).to(torch.bfloat16).to(torch.float64).numpy()
    assert np.array_equal(ours, theirs), "bf16 RNE"
    # block FP8 quantisation error bound and partial edge blocks
    w = rng.standard_normal((200, 300)) * 0.1
    q, s = mc.fp8_quantize_blocks(w)
    assert s.shape == (2, 3)
    dq = mc.fp8_dequantize(q, s)
    for i in range(2):
        for j in range(3):
            blk = (slice(i * 128, (i + 1) * 128), slice(j * 128, (j + 1) * 128))
            amax = np.abs(w[blk]).max()
            assert abs(s[i, j] - amax / 448) <= 1e-7 * amax
            assert np.abs(dq[blk] - w[blk]).max() <= amax / 16 * 1.0001


def expected_stored(case, cfg):
    """Decode-what-we-meant-to-store, computed without the file reader:
    regenerate the originals and push each through the in-memory codec."""
    opts = mc.CASES[case][2]
    rng = np.random.default_rng(opts["seed"])
    W = mc.generate_weights(cfg, rng)
    out = {}
    for name, arr in W.items():
        kind = mc.storage_plan(cfg, name, opts["weights"])
        if kind == "FP8":
            r, c = arr.shape
            f = np.exp(rng.uniform(-0.7, 0.7, size=(-(-r // 128), -(-c // 128))))
            arr = arr * np.repeat(np.repeat(f, 128, 0), 128, 1)[:r, :c]
            q, s = mc.fp8_quantize_blocks(arr)
            out[name] = mc.fp8_dequantize(q, s)
        elif kind == "BF16":
            out[name] = mc.bf16_decode(mc.bf16_encode(arr))
        elif kind == "F16":
            out[name] = arr.astype(np.float16).astype(np.float64)
        else:
            out[name] = arr.astype(np.float32).astype(np.float64)
    return out


def check_files(case, cfg, mdir):
    """Layout checks on what was written (dtypes, scale shapes, shard index)."""
    raw = mc.read_model_tensors(mdir)
    wt = mc.CASES[case][2]["weights"]
    n_fp8 = 0
    for name, (dtype, shape, _) in raw.items():
        if name.endswith("_scale_inv"):
            base = raw[name[:-len("_scale_inv")]]
            assert base[0] == "F8_E4M3" and dtype == "F32"
            assert shape == (-(-base[1][0] // 128), -(-base[1][1] // 128))
            continue
        if name.endswith("e_score_correction_bias"):
            assert dtype == "F32", name
        elif wt == "fp8":
            want = "F8_E4M3" if mc.storage_plan(cfg, name, "fp8") == "FP8" else "BF16"
            assert dtype == want, (name, dtype)
            n_fp8 += dtype == "F8_E4M3"
        else:
            assert dtype == {"bf16": "BF16", "f32": "F32", "f16": "F16"}[wt], (name, dtype)
    multi_block = sum(1 for n, (d, s, _) in raw.items()
                      if d == "F8_E4M3" and (s[0] > 128 or s[1] > 128))
    L = cfg["num_hidden_layers"]
    if cfg.get("num_nextn_predict_layers"):
        p = "model.layers.%d." % L
        for k in ("embed_tokens.weight", "enorm.weight", "hnorm.weight", "eh_proj.weight",
                  "shared_head.norm.weight", "shared_head.head.weight", "mlp.gate.weight"):
            assert p + k in raw, p + k
        assert not np.array_equal(raw[p + "embed_tokens.weight"][2],
                                  raw["model.embed_tokens.weight"][2])
        assert not np.array_equal(raw[p + "shared_head.head.weight"][2],
                                  raw["lm_head.weight"][2])
    else:
        assert not any(n.startswith("model.layers.%d." % L) for n in raw)
    sharded = os.path.exists(os.path.join(mdir, "model.safetensors.index.json"))
    return "%d tensors, %d FP8 (%d with >1 block per side)%s" % (
        len(raw), n_fp8, multi_block, ", 2 shards" if sharded else "")


def applicable_mutations(cfg):
    """The deliberate mistakes of dsv3_ref.MUTATIONS that a case must detect."""
    L = cfg["num_hidden_layers"]
    has_mtp = bool(cfg.get("num_nextn_predict_layers"))
    has_moe = has_mtp or cfg.get("first_k_dense_replace", 0) < L
    method = dsv3_ref.topk_method_of(cfg)
    G = cfg.get("n_group") or 1
    TG = cfg.get("topk_group") or G
    out = ["half_rope", "q_rope_first", "kpe_first", "kvb_v_first"]
    if has_moe:
        out.append("flip_norm_topk")
        if method == "noaux_tc":
            out += ["no_bias", "bias_in_weights"]
        if method != "greedy" and G > 1 and TG < G:
            out.append("no_group_limit")
            if method == "noaux_tc":
                out.append("group_max")
        if (cfg.get("routed_scaling_factor") or 1.0) != 1.0:
            out.append("no_routed_scale")
        if cfg.get("n_shared_experts"):
            out.append("no_shared")
    rs = cfg.get("rope_scaling")
    if rs:
        f = rs["factor"]
        ms, msa = rs.get("mscale", 1.0), rs.get("mscale_all_dim", 0.0)
        out += ["no_yarn", "yarn_spec_literals", "yarn_ramp_flipped"]
        if msa != 1.0:
            out.append("yarn_m_ignore_msa")
        if msa:
            out.append("yarn_no_m2")
        if dsv3_ref.yarn_mscale(f, ms) != dsv3_ref.yarn_mscale(f, msa):
            out.append("yarn_no_cs_mult")
        if ms != msa:
            out.append("yarn_m_from_mscale")
    if float(cfg.get("rms_norm_eps", 1e-6)) != 1e-6:
        out.append("eps_1e-6")
    if has_mtp:
        out += ["mtp_swap_concat", "mtp_h_before_norm", "mtp_main_embed_head",
                "mtp_zero_pos0"]
    return out


def sensitivity(cfg, weights, ids, logits, mtp):
    """-> list of (mutation, relative change of the logits)."""
    res = []
    for m in applicable_mutations(cfg):
        ml, mm = dsv3_ref.Reference(cfg, weights, mut=(m,)).forward(ids)
        e = rel(ml.numpy(), logits)
        if mtp is not None:
            e = max(e, rel(mm.numpy(), mtp))
        res.append((m, e))
    return res


def fp8_sensitivity(cfg, mdir, ids, logits, mtp):
    res = []
    for m in mc.FP8_LOADER_MUTATIONS:
        _, wm = mc.load_checkpoint(mdir, fp8_mut=m)
        ml, mm = dsv3_ref.Reference(cfg, wm).forward(ids)
        e = rel(ml.numpy(), logits)
        if mtp is not None:
            e = max(e, rel(mm.numpy(), mtp))
        res.append((m, e))
    return res


def self_check_case(case, workdir):
    t0 = time.time()
    mdir = os.path.join(workdir, case, "model")
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    cfg = mc.write_checkpoint(case, mdir)
    cfg_read, weights = mc.load_checkpoint(mdir)
    assert cfg_read == cfg
    want = expected_stored(case, cfg)
    assert set(want) == set(weights), set(want) ^ set(weights)
    for k in want:
        assert want[k].shape == weights[k].shape and np.array_equal(want[k], weights[k]), k
    files = check_files(case, cfg, mdir)
    ids, logits, mtp, log, attempts = pick_ids(case, cfg, weights, mc.CASES[case][2]["seed"])
    out, l2, m2, _ = dsv3_ref.self_check(cfg, weights, ids, tol=TOL_SELF)
    assert np.array_equal(l2.numpy(), logits)
    # an FP32 engine over the same stored weights must be well inside the
    # tolerances: emulate one with the reference itself in float32
    import torch
    r32 = dsv3_ref.Reference(cfg, weights, dtype=torch.float32)
    l32, m32 = r32.forward(ids)
    li32, mi32 = r32.forward_incremental(ids)
    f32 = [rel(l32.numpy(), logits), rel(li32.numpy(), l32.numpy())]
    if mtp is not None:
        f32 += [rel(m32.numpy(), mtp), rel(mi32.numpy(), m32.numpy())]
    assert max(f32[0::2]) <= TOL_REF / 10 and max(f32[1::2]) <= TOL_INC / 3, \
        "float32 emulation too far from the float64 reference: %s" % f32
    sens = sensitivity(cfg, weights, ids, logits, mtp)
    if mc.CASES[case][2]["weights"] == "fp8":
        sens += fp8_sensitivity(cfg, mdir, ids, logits, mtp)
    weak = [(m, e) for m, e in sens if e < 10 * TOL_REF]
    assert not weak, "mutations not detected by case %s: %s" % (case, weak)
    weakest = min(sens, key=lambda me: me[1])
    extra = ""
    if mtp is not None:
        extra = ", mtp %s naive/absorbed %.1e" % (tuple(mtp.shape), out["mtp_naive_vs_absorbed"])
    print("PASS %s [self-check %.2fs]: T=%d (draw %d), logits %s max|ref| %.2f, "
          "naive/absorbed %.1e%s, rope forms %.1e; fp32 emulation vs ref %.1e, "
          "inc/pre %.1e; %s; %s; %d mutations detected (weakest %s: %.1e)"
          % (case, time.time() - t0, len(ids), attempts, tuple(logits.shape),
             np.abs(logits).max(), out["main_naive_vs_absorbed"], extra,
             out["rope_forms"], max(f32[0::2]), max(f32[1::2]),
             routing_summary(log), files, len(sens),
             weakest[0], weakest[1]))
    if VERBOSE:
        for m, e in sens:
            why = dsv3_ref.MUTATIONS.get(m) or mc.FP8_LOADER_MUTATIONS[m]
            print("    %-22s %.2e  %s" % (m, e, why))
    return True


# ---------------------------------------------------------------- vs dsv3

def run_dsv3(binary, mdir, ids, out_dir, incremental, with_mtp):
    tag = "inc" if incremental else "pre"
    main_p = os.path.join(out_dir, "main_%s.npy" % tag)
    mtp_p = os.path.join(out_dir, "mtp_%s.npy" % tag)
    for p in (main_p, mtp_p):
        if os.path.exists(p):
            os.remove(p)
    cmd = [binary, "logits", "-m", mdir, "--ids", " ".join(map(str, ids)), "-o", main_p]
    if with_mtp:
        cmd += ["--mtp", mtp_p]
    if incremental:
        cmd.append("--incremental")
    shown = " ".join("'%s'" % c if " " in c else c for c in cmd)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=BIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, None, "timed out after %ds: %s" % (BIN_TIMEOUT, shown)
    except OSError as e:
        return None, None, "cannot run %s: %s" % (binary, e)
    if r.returncode != 0:
        return None, None, "exit status %d: %s\n--- stderr ---\n%s" % (
            r.returncode, shown, r.stderr.decode("utf-8", "replace").rstrip())
    try:
        main = np.load(main_p)
        mtp = np.load(mtp_p) if with_mtp else None
    except Exception as e:  # noqa: BLE001
        return None, None, "cannot read output of %s: %s" % (shown, e)
    return main, mtp, shown


def check_array(what, arr, shape, errors):
    if arr.dtype != np.float32:
        errors.append("%s: dtype %s, expected float32" % (what, arr.dtype))
    if tuple(arr.shape) != tuple(shape):
        errors.append("%s: shape %s, expected %s" % (what, tuple(arr.shape), tuple(shape)))
        return False
    if not np.all(np.isfinite(arr)):
        errors.append("%s: non-finite values" % what)
        return False
    return True


def dsv3_case(case, binary, workdir, model_dir=None):
    """Checks dsv3 on the generated checkpoint of `case`, or on the existing
    model directory `model_dir` (e.g. one written by `dsv3 init`)."""
    t0 = time.time()
    cdir = os.path.join(workdir, case)
    if model_dir:
        mdir = model_dir
        os.makedirs(cdir, exist_ok=True)
        cfg, weights = mc.load_checkpoint(mdir)
        seed = 0
    else:
        mdir = os.path.join(cdir, "model")
        if os.path.exists(mdir):
            shutil.rmtree(mdir)
        cfg = mc.write_checkpoint(case, mdir)
        _, weights = mc.load_checkpoint(mdir)
        seed = mc.CASES[case][2]["seed"]
    ids, ref_main, ref_mtp, log, _ = pick_ids(case, cfg, weights, seed)
    with_mtp = ref_mtp is not None
    T, V = len(ids), cfg["vocab_size"]
    got = {}
    for inc in (False, True):
        main, mtp, info = run_dsv3(binary, mdir, ids, cdir, inc, with_mtp)
        if main is None:
            print("FAIL %s: dsv3 %s" % (case, info))
            return False
        got[inc] = (main, mtp, info)
    errors = []
    meas = []
    valid = {"main": 0, "mtp": 0}
    for inc in (False, True):
        main, mtp, info = got[inc]
        tag = "incremental" if inc else "prefill"
        if not check_array("main logits (%s)" % tag, main, (T, V), errors):
            continue
        valid["main"] += 1
        e = rel(main, ref_main)
        meas.append("main(%s) %.2e" % (tag[:3], e))
        if e > TOL_REF:
            row = int(np.argmax(np.max(np.abs(main - ref_main), axis=1)))
            errors.append("main logits (%s) vs reference: rel err %.3e > %.0e "
                          "(worst row %d; max|ref| %.3f)  [%s]"
                          % (tag, e, TOL_REF, row, np.abs(ref_main).max(), info))
        if with_mtp:
            if not check_array("mtp logits (%s)" % tag, mtp, (T - 1, V), errors):
                continue
            valid["mtp"] += 1
            e = rel(mtp, ref_mtp)
            meas.append("mtp(%s) %.2e" % (tag[:3], e))
            if e > TOL_REF:
                row = int(np.argmax(np.max(np.abs(mtp - ref_mtp), axis=1)))
                errors.append("mtp logits (%s) vs reference: rel err %.3e > %.0e "
                              "(worst row %d; max|ref| %.3f)  [%s]"
                              % (tag, e, TOL_REF, row, np.abs(ref_mtp).max(), info))
    if valid["main"] == 2:
        e = rel(got[True][0], got[False][0])
        meas.append("main inc/pre %.2e" % e)
        if e > TOL_INC:
            errors.append("main logits incremental vs prefill: rel err %.3e > %.0e" % (e, TOL_INC))
    if valid["mtp"] == 2:
        e = rel(got[True][1], got[False][1])
        meas.append("mtp inc/pre %.2e" % e)
        if e > TOL_INC:
            errors.append("mtp logits incremental vs prefill: rel err %.3e > %.0e" % (e, TOL_INC))
    if errors:
        print("FAIL %s (%s)" % (case, mc.CASES[case][0] if case in mc.CASES else mdir))
        for e in errors:
            print("  " + e)
        if meas:
            print("  measured: " + ", ".join(meas))
        print("  model kept in %s" % mdir)
        return False
    print("PASS %s [%.1fs]: T=%d; %s" % (case, time.time() - t0, T, ", ".join(meas)))
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsv3", help="path to the dsv3 binary")
    ap.add_argument("--case", action="append",
                    help="case name (repeatable; 'all' = every case)")
    ap.add_argument("--workdir", help="keep models and outputs here (default: temp dir)")
    ap.add_argument("--model", help="check this existing model directory instead of a generated case")
    ap.add_argument("--list", action="store_true", help="print case names, one a line")
    ap.add_argument("--self-check", action="store_true",
                    help="no binary: check checkpoints and the reference itself")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="self-check: print every mutation's effect")
    a = ap.parse_args(argv)
    global VERBOSE
    VERBOSE = a.verbose
    if a.list:
        for n in mc.case_names():
            print(n)
        return 0
    cases = a.case or (["all"] if a.self_check else [])
    if a.model:
        cases = ["model"]
    if not cases:
        ap.error("--case is required (or --list / --self-check)")
    if "all" in cases:
        cases = mc.case_names()
    for c in cases:
        if c not in mc.CASES and not a.model:
            ap.error("unknown case %r (see --list)" % c)
    if not a.self_check:
        if not a.dsv3:
            ap.error("--dsv3 PATH is required (or --self-check)")
        if not os.path.isfile(a.dsv3):
            print("FAIL: dsv3 binary not found: %s" % a.dsv3)
            return 1
    import torch
    torch.set_num_threads(1)
    tmp = None
    workdir = a.workdir
    if workdir:
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="dsv3_ref_")
        workdir = tmp
    ok = True
    try:
        if a.self_check:
            codec_checks()
            print("PASS codecs: E4M3 table/nearest/ties-to-even/saturation, BF16 RNE "
                  "(vs torch), FP8 128x128 block scales")
        for c in cases:
            try:
                if a.self_check:
                    ok &= self_check_case(c, workdir)
                else:
                    ok &= dsv3_case(c, os.path.abspath(a.dsv3), workdir, a.model)
            except AssertionError as e:
                import traceback
                traceback.print_exc()
                print("FAIL %s: self-consistency assertion %s" % (c, e))
                ok = False
    finally:
        if tmp and ok:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            print("files kept in %s" % tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
