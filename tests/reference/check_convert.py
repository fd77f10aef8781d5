#!/usr/bin/python3
"""`dsv3 convert` against the reference's own safetensors reader and FP8 codec.

    /usr/bin/python3 tests/reference/check_convert.py --dsv3 build/dsv3 --workdir DIR

Source checkpoints are written by the reference (make_checkpoint.py): `fp8_blocks`
(official FP8 layout with partial 128x128 blocks) and `bf16_base`. Then:
  fp8 -> bf16: every FP8 weight becomes exactly bf16(float32(e4m3(q) * scale_inv)) (the
               official fp8_cast_bf16 cast); every other tensor keeps its bits; no scales.
  fp8 -> f32:  exactly float32(e4m3(q) * scale_inv); `dsv3 logits` of the FP8 model and of
               this twin agree to 1e-6 (the FP8 kernels decode to the same FP32 values).
               The BF16 twin's logits differ by its rounding; the difference is printed.
  bf16 -> fp8: the projections are the reference's block quantisation of the BF16 values
               (codes and scales; the quotient w / scale rounded to FP32 as the official
               kernels compute it), everything else keeps its bits, config.json gets the
               release's quantization_config, and the converted model's logits match the
               independent float64 reference (check_logits.py).
Tokenizer files are copied byte for byte; an existing output directory is refused.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_checkpoint as mc  # noqa: E402
import check_logits as cl  # noqa: E402

TOL_TWIN = 1e-6


def convert(binary, src, out, to):
    if os.path.exists(out):
        shutil.rmtree(out)
    subprocess.run([binary, "convert", "-m", src, "-o", out, "--to", to], check=True, capture_output=True)
    return mc.read_model_tensors(out)


def logits(binary, model, ids, out):
    subprocess.run([binary, "logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out],
                   check=True, capture_output=True)
    return np.load(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsv3", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    errors = []

    fp8_dir, bf16_dir = os.path.join(work, "fp8_src"), os.path.join(work, "bf16_src")
    mc.write_checkpoint("fp8_blocks", fp8_dir)
    mc.write_checkpoint("bf16_base", bf16_dir)
    tokenizer_config = b'{"add_bos_token": true, "chat_template": "x"}'
    with open(os.path.join(fp8_dir, "tokenizer_config.json"), "wb") as f:
        f.write(tokenizer_config)
    src = mc.read_model_tensors(fp8_dir)

    # fp8 -> bf16 and f32: the dequantised values, exactly.
    for to in ("bf16", "f32"):
        out = convert(args.dsv3, fp8_dir, os.path.join(work, "to_" + to), to)
        for name, (dtype, shape, values) in src.items():
            if name.endswith("_scale_inv"):
                if name in out:
                    errors.append("%s: %s still present" % (to, name))
                continue
            if dtype == "F8_E4M3":
                deq = mc.fp8_dequantize(values, src[name + "_scale_inv"][2]).astype(np.float32)
                want = mc.bf16_decode(mc.bf16_encode(deq)) if to == "bf16" else deq.astype(np.float64)
            else:
                want = values
            got_dtype, got_shape, got = out[name]
            expect_dtype = "F32" if name.endswith("e_score_correction_bias") else to.upper()
            if got_dtype != expect_dtype or got_shape != shape or not np.array_equal(got, want):
                errors.append("%s: %s differs (%s %s)" % (to, name, got_dtype, got_shape))
        with open(os.path.join(work, "to_" + to, "tokenizer_config.json"), "rb") as f:
            if f.read() != tokenizer_config:
                errors.append("%s: tokenizer_config.json not copied" % to)

    ids = [1, 5, 9, 17, 3, 44, 60, 2, 31, 7]
    main_fp8 = logits(args.dsv3, fp8_dir, ids, os.path.join(work, "fp8.npy"))
    twin = cl.rel(logits(args.dsv3, os.path.join(work, "to_f32"), ids, os.path.join(work, "f32.npy")), main_fp8)
    bf16_twin = cl.rel(logits(args.dsv3, os.path.join(work, "to_bf16"), ids, os.path.join(work, "bf16.npy")), main_fp8)
    print("logits of the FP8 model vs its F32 twin: rel %.2e (limit %.0e); vs its BF16 twin: rel %.2e "
          "(BF16 rounding of the dequantised weights)" % (twin, TOL_TWIN, bf16_twin))
    if twin > TOL_TWIN:
        errors.append("FP8 vs F32-twin logits: rel %.2e > %.0e" % (twin, TOL_TWIN))

    # bf16 -> fp8: the release's block quantisation of the BF16 values.
    src = mc.read_model_tensors(bf16_dir)
    fp8_out_dir = os.path.join(work, "to_fp8")
    out = convert(args.dsv3, bf16_dir, fp8_out_dir, "fp8")
    cfg = json.load(open(os.path.join(fp8_out_dir, "config.json")))
    if cfg.get("quantization_config", {}).get("weight_block_size") != [128, 128]:
        errors.append("fp8: config.json lacks the release quantization_config")
    quantized = 0
    for name, (dtype, shape, values) in src.items():
        plan = mc.storage_plan(cfg, name, "fp8")
        got_dtype, got_shape, got = out[name]
        if plan == "FP8":
            codes, scale = mc.fp8_quantize_blocks(values, divide_in_float32=True)
            got_scale = out[name + "_scale_inv"][2]
            if got_dtype != "F8_E4M3" or not np.array_equal(got, codes) or not np.array_equal(got_scale, scale):
                errors.append("fp8: %s is not the block quantisation of its BF16 values (%d codes differ)"
                              % (name, int(np.sum(got != codes)) if got.shape == codes.shape else -1))
            quantized += 1
        elif got_dtype != plan or not np.array_equal(got, values):
            errors.append("fp8: %s should keep its values as %s (got %s)" % (name, plan, got_dtype))
    if quantized == 0:
        errors.append("fp8: no tensor was quantised")
    if not cl.dsv3_case("converted_fp8", args.dsv3, work, model_dir=fp8_out_dir):
        errors.append("fp8: the converted model's logits do not match the reference")

    with open(os.path.join(work, "existing_marker"), "w") as f:
        f.write("x")
    r = subprocess.run([args.dsv3, "convert", "-m", fp8_dir, "-o", work, "--to", "bf16"], capture_output=True)
    if r.returncode == 0 or b"not an empty directory" not in r.stderr:
        errors.append("convert into a non-empty directory was not refused: %r" % r.stderr)

    for e in errors:
        print("FAIL " + e)
    print("%s: %d FP8 projections re-quantised, %d problems" % ("FAIL" if errors else "PASS", quantized, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
