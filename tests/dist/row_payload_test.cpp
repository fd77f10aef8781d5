// Rows as they travel between ranks: FP32 exactly, BF16 rounded to nearest even, FP8 as E4M3
// codes with one scale per 1x128 tile, within E4M3's rounding error of each tile's scale.
#include "dist/row_payload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace dsv3 {
namespace {

std::vector<float> random_rows(int64_t rows, int64_t cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  // Tiles of very different magnitudes, so a shared scale would show.
  for (int64_t i = 0; i < rows * cols; ++i) x[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>((i / 128) % 9) - 4);
  return x;
}

std::vector<float> round_trip(RowPayload payload, const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * payload_row_bytes(payload, cols)));
  encode_rows(payload, x.data(), rows, cols, bytes.data());
  std::vector<float> y(x.size());
  decode_rows(payload, bytes.data(), rows, cols, y.data());
  return y;
}

TEST(RowPayload, RowSizes) {
  EXPECT_EQ(payload_row_bytes(RowPayload::kF32, 300), 1200);
  EXPECT_EQ(payload_row_bytes(RowPayload::kBF16, 300), 600);
  EXPECT_EQ(payload_row_bytes(RowPayload::kFP8, 300), 300 + 3 * 4);  // 3 tiles, the last partial
}

TEST(RowPayload, F32IsExact) {
  const auto x = random_rows(3, 300);
  EXPECT_EQ(round_trip(RowPayload::kF32, x, 3, 300), x);
}

TEST(RowPayload, Bf16RoundsToNearestEven) {
  const auto x = random_rows(3, 300);
  const auto y = round_trip(RowPayload::kBF16, x, 3, 300);
  for (size_t i = 0; i < x.size(); ++i) {
    // The 16 low bits dropped, rounded to nearest with ties to even, computed on the bits here.
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    const uint32_t lower = bits & 0xFFFF, kept = bits >> 16;
    const uint32_t rounded = (lower > 0x8000 || (lower == 0x8000 && (kept & 1))) ? kept + 1 : kept;
    const uint32_t expected_bits = rounded << 16;
    float expected;
    std::memcpy(&expected, &expected_bits, 4);
    ASSERT_EQ(y[i], expected) << i;
  }
}

TEST(RowPayload, Fp8TilesStayWithinE4m3Rounding) {
  const int64_t rows = 3, cols = 300;
  const auto x = random_rows(rows, cols);
  const auto y = round_trip(RowPayload::kFP8, x, rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t0 = 0; t0 < cols; t0 += 128) {
      const int64_t t1 = std::min<int64_t>(t0 + 128, cols);
      float amax = 0;
      for (int64_t c = t0; c < t1; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
      const float scale = amax / 448.0f;
      for (int64_t c = t0; c < t1; ++c) {
        const float v = x[r * cols + c], got = y[r * cols + c];
        // E4M3: 3 mantissa bits (relative error <= 2^-4 for normals), subnormal step 2^-9 of the scale.
        const float bound = std::max(std::fabs(v) * 0.0625f, scale * std::ldexp(1.0f, -10)) * 1.0001f;
        ASSERT_LE(std::fabs(got - v), bound) << r << " " << c;
      }
      // The tile's largest value is represented exactly at 448 * scale (up to the scale's rounding).
      float top = 0;
      for (int64_t c = t0; c < t1; ++c) top = std::max(top, std::fabs(y[r * cols + c]));
      EXPECT_NEAR(top, amax, amax * 1e-6f);
    }
}

}  // namespace
}  // namespace dsv3
