// Block-scaled FP8 GEMM as DeepSeek-V3's FP8 training recipe computes it (training.md,
// "FP8 mixed precision"), simulated on a CPU without FP8 arithmetic:
//   C[m][n] = sum over 128-long runs r of k:  scale_a(m, r) * scale_b(n, r) * sum_{k in r} a[m][k] * b[n][k]
// with a and b E4M3 values. Products of two E4M3 values are exact in FP32; each run of 128
// of them is summed in FP32 (the tensor-core part), then promoted: multiplied by the two
// scales and added to the FP32 accumulator. This is what makes the result independent of
// how coarse the FP8 grid is within a run.
//
// Both operands are [rows][k] row-major (k is the inner dimension) with one scale per 128
// values of k and per `rows_per_scale` rows: 1 for activation tiles (1x128), 128 for
// weight blocks (128x128).
#pragma once

#include <cstdint>

#include "base/thread_pool.h"
#include "tensor/fp8_blocks.h"

namespace dsv3 {

struct Fp8Operand {
  const uint8_t* codes = nullptr;  // [rows][k] E4M3
  const float* scales = nullptr;   // [ceil(rows / rows_per_scale)][ceil(k / 128)]
  int64_t rows = 0;
  int64_t rows_per_scale = 1;
};

inline Fp8Operand fp8_operand(const Fp8Tensor& t) { return {t.codes.data(), t.scales.data(), t.rows, t.rows_per_scale}; }

// c: [a.rows][b.rows], overwritten.
void fp8_gemm(const Fp8Operand& a, const Fp8Operand& b, int64_t k, float* c, ThreadPool& pool);

}  // namespace dsv3
