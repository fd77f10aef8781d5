// Linear layers whose GEMM inputs are rounded to a lower precision, as mixed-precision
// training runs them (training.md, "FP8 mixed precision"); accumulation is FP32 and the
// weights stay FP32 masters outside. The three GEMMs of a layer:
//   forward       y  = x W^T   x in 1x128 tiles along in,     W in 128x128 blocks
//   input grad    dx = dy W    dy in 1x128 tiles along out,   W in 128x128 blocks
//   weight grad   dW += dy^T x dy and x in 128x1 tiles along the tokens
// (FP8: tiles and blocks are the quantisation groups, each with its own scale, and the
// inner dimension is promoted every 128 products; BF16: every input rounded to BF16.)
// W is [out][in] like a PyTorch Linear; x is [rows][in], y and dy are [rows][out].
#pragma once

#include <cstdint>
#include <string>

#include "base/thread_pool.h"

namespace dsv3 {

enum class GemmPrecision { kF32, kBF16, kFP8 };

// "fp32", "bf16", "fp8"; throws Error naming `what` otherwise.
GemmPrecision gemm_precision_from_name(const std::string& name, const std::string& what);

void quantized_linear(GemmPrecision precision, const float* x, const float* W, int64_t rows, int64_t in, int64_t out,
                      float* y, ThreadPool& pool);

// dx is overwritten (skipped if null); dW is accumulated into (skipped if null).
void quantized_linear_backward(GemmPrecision precision, const float* x, const float* W, const float* dy, int64_t rows,
                               int64_t in, int64_t out, float* dx, float* dW, ThreadPool& pool);

}  // namespace dsv3
