// Matrix products with weights in their stored dtype (F32, BF16, F16, FP8 with block
// scales), decoded to FP32 in small tiles next to the arithmetic and accumulated in FP32.
// No dequantised copy of a weight matrix is ever made.
#pragma once

#include <cstdint>
#include <span>

#include "base/thread_pool.h"
#include "tensor/matrix.h"

namespace dsv3 {

// How x enters the products. kF32, the default: as it is (every product exact in FP32).
// kBF16, opt-in: x rounded to BF16 first (round to nearest even), as llama.cpp does with BF16
// weights; where the CPU has AVX512-BF16, BF16 weights then meet x in its dot-product
// instruction (two products per lane and instruction, no decode) in passes of any size, and
// so do FP8 weights turned into their exact BF16 values by table lookups (AVX512-VBMI; rows a
// multiple of 128 long), and Q8_0 weights in passes of 1-4 tokens; larger passes of BF16 and
// FP8 weights run on AMX tiles where the CPU has them (amx_matmul.h). Faster decoding and prefill at the price of x's precision (8
// significant bits instead of 24).
// kQ8, opt-in: x quantised as llama.cpp quantises what meets Q8_0 weights (blocks of 32: d =
// max|x| / 127 as an F16, codes round(x / d)), for Q8_0 weights with rows a multiple of 64
// long and passes of up to 32 tokens (decoding, speculative verification, batches); the
// integer products summed exactly (AVX512-VNNI where the CPU has it), each block's sums times
// both blocks' d in FP32. Everything else (other weights, prefill) takes x as kBF16 does.
enum class MatmulInput { kF32, kBF16, kQ8 };

// y[t][r] = sum_c W[r][c] * x[t][c] for t < T and rows r in [row_begin, row_end);
// x rows are x_stride floats apart, y rows y_stride floats apart; y is overwritten.
void matmul_rows(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t y_stride,
                 int64_t row_begin, int64_t row_end, MatmulInput input = MatmulInput::kF32);

// y = x W^T for all rows of W, split over the pool. x is [T][W.cols], y is [T][W.rows].
void matmul(const Matrix& W, const float* x, int64_t T, float* y, ThreadPool& pool,
            MatmulInput input = MatmulInput::kF32);

// One product of a batch: y = x W^T for T tokens, strides as in matmul_rows.
struct MatmulJob {
  const Matrix* W;
  const float* x;
  int64_t x_stride, T;
  float* y;
  int64_t y_stride;
};

// Runs independent products in one pass over the pool, their rows cut into tasks together:
// small matrices (a decoded token's experts) keep every thread busy without a pool dispatch
// each. Each job's results are matmul's, bit for bit.
void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool, MatmulInput input = MatmulInput::kF32);

// y[t][c] = sum_r x[t][r] * W[r][c] for c < cols <= W.cols (x W, the transposed use of a Linear
// weight, or its first columns), one thread; x rows are x_stride floats apart, y is [T][cols]
// and overwritten, or added to when `accumulate` (each element's sum then continues from y's
// value, as a loop of y[t][c] += x[t][r] * W[r][c] over r would).
void matmul_transposed(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t cols,
                       bool accumulate = false);

}  // namespace dsv3
