#include "kernels/cpu/fp8_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "tensor/fp8.h"

namespace dsv3 {
namespace {

// Random values whose magnitude changes from one 128x128 region to the next, so that every
// scale matters.
std::vector<float> random_matrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      x[static_cast<size_t>(r * cols + c)] = normal(rng) * std::ldexp(1.0f, int((r / 16 + c / 128) % 7) - 3);
  return x;
}

// Against a double-precision reference on the decoded values. The FP32 result can differ
// from it by the rounding of a 128-term FP32 sum (128 u per run, relative to the sum of
// the magnitudes of the products), the promotion's two roundings and the accumulation over
// the runs: |c - ref| <= (128 + runs + 2) u sum_k |a_k b_k|, u = 2^-24.
TEST(Fp8GemmTest, MatchesDoubleReferenceWithinThePromotionBound) {
  ThreadPool pool(2);
  for (auto [M, N, K, a_group, b_group] : std::vector<std::array<int64_t, 5>>{
           {37, 45, 300, 1, 128}, {5, 130, 128, 1, 128}, {130, 7, 517, 128, 1}, {64, 64, 64, 1, 1}}) {
    const std::vector<float> x = random_matrix(M, K, 1), w = random_matrix(N, K, 2);
    Fp8Tensor a, b;
    a.quantize(x.data(), M, K, a_group);
    b.quantize(w.data(), N, K, b_group);
    std::vector<float> c(static_cast<size_t>(M * N));
    fp8_gemm(fp8_operand(a), fp8_operand(b), K, c.data(), pool);
    const std::vector<float> ad = a.dequantize(), bd = b.dequantize();
    const int64_t runs = (K + 127) / 128;
    const double u = std::ldexp(1.0, -24);
    double worst = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0, magnitude = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double p = double(ad[static_cast<size_t>(m * K + k)]) * double(bd[static_cast<size_t>(n * K + k)]);
          ref += p;
          magnitude += std::fabs(p);
        }
        const double bound = double(128 + runs + 2) * u * magnitude;
        const double err = std::fabs(double(c[static_cast<size_t>(m * N + n)]) - ref);
        worst = std::max(worst, err / bound);
        ASSERT_LE(err, bound) << M << "x" << N << "x" << K << " at " << m << "," << n;
      }
    // The quantisation itself is coarse (E4M3 keeps 4 significant bits): the product of the
    // FP8 operands differs from the FP32 one by far more than the bound above.
    double quantisation_error = 0;
    for (int64_t n = 0; n < N; ++n) {
      double exact = 0;
      for (int64_t k = 0; k < K; ++k) exact += double(x[static_cast<size_t>(k)]) * double(w[static_cast<size_t>(n * K + k)]);
      quantisation_error = std::max(quantisation_error, std::fabs(exact - double(c[static_cast<size_t>(n)])));
    }
    EXPECT_GT(quantisation_error, 0.0);
    EXPECT_LT(worst, 1.0);
  }
}

TEST(Fp8GemmTest, QuantisedValuesKeepTheirGroupsAmaxAndZeroGroups) {
  std::vector<float> x = random_matrix(3, 260, 4);
  std::fill(x.begin() + 128, x.begin() + 256, 0.0f);  // row 0, second group: all zero
  Fp8Tensor t;
  t.quantize(x.data(), 3, 260, 1);
  ASSERT_EQ(t.scales.size(), 9u);
  EXPECT_EQ(t.scales[1], 1.0f);
  const std::vector<float> back = t.dequantize();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t g = 0; g < 3; ++g) {
      float amax = 0, amax_back = 0;
      for (int64_t c = g * 128; c < std::min<int64_t>(260, (g + 1) * 128); ++c) {
        amax = std::max(amax, std::fabs(x[static_cast<size_t>(r * 260 + c)]));
        amax_back = std::max(amax_back, std::fabs(back[static_cast<size_t>(r * 260 + c)]));
      }
      EXPECT_FLOAT_EQ(amax_back, amax) << r << " " << g;  // the largest maps to ±448 exactly
      for (int64_t c = g * 128; c < std::min<int64_t>(260, (g + 1) * 128); ++c)  // 4 significant bits
        EXPECT_LE(std::fabs(back[static_cast<size_t>(r * 260 + c)] - x[static_cast<size_t>(r * 260 + c)]),
                  std::max(std::fabs(x[static_cast<size_t>(r * 260 + c)]) / 16, amax / 448 / 1024));
    }
}

// Found in training (gradients through near-zero routing weights): amax / 448 below FP32's
// normal range was a subnormal scale or 0, and 0 / 0 turned the group's zeros into NaN.
TEST(Fp8GemmTest, TinyGroupsStayFiniteAndKeepTheirSigns) {
  for (float amax : {1e-36f, 1e-41f, 1e-44f, std::numeric_limits<float>::denorm_min()}) {
    std::vector<float> x(130, 0.0f);
    x[3] = amax;
    x[7] = -amax / 2;
    x[129] = -amax;  // alone in a partial group
    Fp8Tensor t;
    t.quantize(x.data(), 1, 130, 1);
    for (float s : t.scales) EXPECT_GE(s, std::numeric_limits<float>::min()) << amax;
    const std::vector<float> back = t.dequantize();
    for (size_t c = 0; c < x.size(); ++c) {
      ASSERT_TRUE(std::isfinite(back[c])) << amax << " column " << c;
      // The scale is FLT_MIN at most 448 times too large: values keep their sign and size to
      // E4M3's subnormal step times the scale.
      EXPECT_LE(std::fabs(back[c] - x[c]), std::max(std::fabs(x[c]) / 16, std::numeric_limits<float>::min() / 512))
          << amax << " column " << c;
      if (x[c] != 0.0f && std::fabs(x[c]) >= std::numeric_limits<float>::min() / 256) {
        EXPECT_EQ(std::signbit(back[c]), std::signbit(x[c])) << amax << " column " << c;
      }
    }
  }
}

}  // namespace
}  // namespace dsv3
