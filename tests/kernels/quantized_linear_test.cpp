#include "kernels/cpu/quantized_linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/fp8_blocks.h"

namespace dsv3 {
namespace {

std::vector<float> random_values(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = normal(rng) * std::ldexp(1.0f, int(i / 97 % 5) - 2);
  return v;
}

std::vector<float> transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> t(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = x[static_cast<size_t>(r * cols + c)];
  return t;
}

std::vector<float> fp8_values(const std::vector<float>& x, int64_t rows, int64_t cols, int64_t rows_per_scale) {
  Fp8Tensor t;
  t.quantize(x.data(), rows, cols, rows_per_scale);
  return t.dequantize();
}

std::vector<float> bf16_values(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return out;
}

// c[m][n] = sum_k a[m][k] b[n][k] in double, and the sum of the magnitudes of the products.
void reference(const std::vector<float>& a, const std::vector<float>& b, int64_t M, int64_t N, int64_t K,
               std::vector<double>& c, std::vector<double>& magnitude) {
  c.assign(static_cast<size_t>(M * N), 0.0);
  magnitude.assign(c.size(), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(a[static_cast<size_t>(m * K + k)]) * double(b[static_cast<size_t>(n * K + k)]);
        c[static_cast<size_t>(m * N + n)] += p;
        magnitude[static_cast<size_t>(m * N + n)] += std::fabs(p);
      }
}

void expect_close(const float* got, const std::vector<double>& want, const std::vector<double>& magnitude, int64_t K,
                  const char* what) {
  const double u = std::ldexp(1.0, -24), slack = double(128 + K / 128 + 4) * u;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_LE(std::fabs(double(got[i]) - want[i]), slack * magnitude[i] + 1e-30) << what << " element " << i;
}

// Each of the three GEMMs quantises its inputs along its own inner dimension (activations
// and gradients in 1x128 tiles, the weight in 128x128 blocks, tokens in 128x1 tiles for the
// weight gradient) and otherwise computes the exact product of the quantised values.
TEST(QuantizedLinearTest, Fp8GemmsQuantiseAlongTheirInnerDimension) {
  ThreadPool pool(2);
  const int64_t rows = 150, in = 200, out = 140;
  const std::vector<float> x = random_values(rows * in, 1), W = random_values(out * in, 2),
                           dy = random_values(rows * out, 3);
  std::vector<float> y(static_cast<size_t>(rows * out)), dx(static_cast<size_t>(rows * in)),
      dW(static_cast<size_t>(out * in), 0.5f);
  quantized_linear(GemmPrecision::kFP8, x.data(), W.data(), rows, in, out, y.data(), pool);
  quantized_linear_backward(GemmPrecision::kFP8, x.data(), W.data(), dy.data(), rows, in, out, dx.data(), dW.data(),
                            pool);
  std::vector<double> want, magnitude;
  const std::vector<float> w_blocks = fp8_values(W, out, in, 128);
  reference(fp8_values(x, rows, in, 1), w_blocks, rows, out, in, want, magnitude);
  expect_close(y.data(), want, magnitude, in, "forward");
  reference(fp8_values(dy, rows, out, 1), transpose(w_blocks, out, in), rows, in, out, want, magnitude);
  expect_close(dx.data(), want, magnitude, out, "input gradient");
  reference(fp8_values(transpose(dy, rows, out), out, rows, 1), fp8_values(transpose(x, rows, in), in, rows, 1), out,
            in, rows, want, magnitude);
  for (double& v : want) v += 0.5;  // accumulated into
  expect_close(dW.data(), want, magnitude, rows, "weight gradient");
}

TEST(QuantizedLinearTest, Bf16RoundsEveryInputAndF32IsThePlainLayer) {
  ThreadPool pool(1);
  const int64_t rows = 9, in = 33, out = 17;
  const std::vector<float> x = random_values(rows * in, 4), W = random_values(out * in, 5);
  std::vector<float> y(static_cast<size_t>(rows * out)), y32(y.size());
  quantized_linear(GemmPrecision::kBF16, x.data(), W.data(), rows, in, out, y.data(), pool);
  quantized_linear(GemmPrecision::kF32, x.data(), W.data(), rows, in, out, y32.data(), pool);
  std::vector<double> want, magnitude;
  reference(bf16_values(x), bf16_values(W), rows, out, in, want, magnitude);
  expect_close(y.data(), want, magnitude, in, "bf16 forward");
  reference(x, W, rows, out, in, want, magnitude);
  expect_close(y32.data(), want, magnitude, in, "f32 forward");
  EXPECT_NE(y, y32);  // the rounding is not a no-op
  EXPECT_THROW(gemm_precision_from_name("fp16", "--precision"), Error);
}

}  // namespace
}  // namespace dsv3
