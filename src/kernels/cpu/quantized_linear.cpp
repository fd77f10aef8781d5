#include "kernels/cpu/quantized_linear.h"

#include <vector>

#include "base/error.h"
#include "kernels/cpu/fp8_gemm.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/transpose.h"
#include "tensor/dtype.h"

namespace dsv3 {

namespace {

std::vector<float> bf16_rounded(const float* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = bf16_to_f32(f32_to_bf16(x[i]));
  return out;
}

std::vector<float> transposed(const float* x, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  transpose(x, rows, cols, out.data());
  return out;
}

constexpr int64_t kBlock = 128;  // weight blocks are 128 x 128; activation tiles 1 x 128

Fp8Tensor quantized(const float* x, int64_t rows, int64_t cols, int64_t rows_per_scale, ThreadPool& pool) {
  Fp8Tensor t;
  t.quantize(x, rows, cols, rows_per_scale, &pool);
  return t;
}

}  // namespace

GemmPrecision gemm_precision_from_name(const std::string& name, const std::string& what) {
  if (name == "fp32") return GemmPrecision::kF32;
  if (name == "bf16") return GemmPrecision::kBF16;
  if (name == "fp8") return GemmPrecision::kFP8;
  fail(what, " must be fp32, bf16 or fp8, got '", name, "'");
}

void quantized_linear(GemmPrecision precision, const float* x, const float* W, int64_t rows, int64_t in, int64_t out,
                      float* y, ThreadPool& pool) {
  switch (precision) {
    case GemmPrecision::kF32:
      return linear(x, W, rows, in, out, y, pool);
    case GemmPrecision::kBF16:
      return linear(bf16_rounded(x, rows * in).data(), bf16_rounded(W, out * in).data(), rows, in, out, y, pool);
    case GemmPrecision::kFP8: {
      const Fp8Tensor a = quantized(x, rows, in, 1, pool), b = quantized(W, out, in, kBlock, pool);
      return fp8_gemm(fp8_operand(a), fp8_operand(b), in, y, pool);
    }
  }
}

void quantized_linear_backward(GemmPrecision precision, const float* x, const float* W, const float* dy, int64_t rows,
                               int64_t in, int64_t out, float* dx, float* dW, ThreadPool& pool) {
  switch (precision) {
    case GemmPrecision::kF32:
      return linear_backward(x, W, dy, rows, in, out, dx, dW, pool);
    case GemmPrecision::kBF16:
      return linear_backward(bf16_rounded(x, rows * in).data(), bf16_rounded(W, out * in).data(),
                             bf16_rounded(dy, rows * out).data(), rows, in, out, dx, dW, pool);
    case GemmPrecision::kFP8: {
      if (dx) {  // dx = dy W: inner dimension out; W^T's 128x128 blocks are W's, transposed
        const std::vector<float> wt = transposed(W, out, in);
        const Fp8Tensor a = quantized(dy, rows, out, 1, pool), b = quantized(wt.data(), in, out, kBlock, pool);
        fp8_gemm(fp8_operand(a), fp8_operand(b), out, dx, pool);
      }
      if (dW) {  // dW += dy^T x: inner dimension the tokens
        const std::vector<float> dyt = transposed(dy, rows, out), xt = transposed(x, rows, in);
        const Fp8Tensor a = quantized(dyt.data(), out, rows, 1, pool), b = quantized(xt.data(), in, rows, 1, pool);
        std::vector<float> grad(static_cast<size_t>(out * in));
        fp8_gemm(fp8_operand(a), fp8_operand(b), rows, grad.data(), pool);
        for (int64_t i = 0; i < out * in; ++i) dW[i] += grad[static_cast<size_t>(i)];
      }
      return;
    }
  }
}

}  // namespace dsv3
