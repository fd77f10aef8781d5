#include "tensor/matrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace dsv3 {
namespace {

// FP8 rows decode to e4m3(q) * scale_inv of their block, bit for bit: every code (NaN,
// subnormals, ±448), scales small and large (2^8 and up take another path), partial
// blocks at the edges and column ranges that start and end inside blocks.
TEST(MatrixTest, Fp8RowsDecodeToCodeTimesBlockScale) {
  const int64_t rows = 130, cols = 300;  // partial blocks in both directions
  std::vector<uint8_t> q(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>((i * 37) % 256);
  const std::vector<float> scales = {1e-3f, 0.0123f, 3.0f, std::ldexp(1.0f, -20), 300.0f, 1.0f};  // [2][3]
  const Matrix m{DType::F8_E4M3, rows, cols, q.data(), scales.data(), 0};
  std::mt19937 rng(2);
  std::vector<float> out(static_cast<size_t>(cols));
  for (int64_t r : {0, 5, 127, 128, 129}) {
    for (int trial = 0; trial < 20; ++trial) {
      int64_t c0 = static_cast<int64_t>(rng() % cols), c1 = static_cast<int64_t>(rng() % (cols + 1));
      if (trial == 0) c0 = 0, c1 = cols;
      if (c0 > c1) std::swap(c0, c1);
      m.decode_row(r, c0, c1, out.data());
      for (int64_t c = c0; c < c1; ++c) {
        const uint8_t code = q[static_cast<size_t>(r * cols + c)];
        const float want = e4m3_to_f32(code) * scales[static_cast<size_t>((r / 128) * 3 + c / 128)];
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(out[static_cast<size_t>(c - c0)])) << r << " " << c;
        } else {
          ASSERT_EQ(f32_to_bits(out[static_cast<size_t>(c - c0)]), f32_to_bits(want)) << r << " " << c << " " << int(code);
        }
      }
    }
  }
}

}  // namespace
}  // namespace dsv3
