#include "tensor/matrix.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>

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

// The scan of a whole FP8 tensor finds a NaN code (0x7F or 0xFF) wherever it is, and only those:
// the largest numbers (0x7E, 0xFE), negative zero (0x80) and every other code are clean. It
// answers from what it found the first time it was asked.
TEST(Fp8NanScanTest, FindsExactlyTheNanCodes) {
  std::vector<uint8_t> codes(1000);
  for (size_t i = 0; i < codes.size(); ++i) {  // every code, the NaN ones replaced by the largest numbers
    const auto code = static_cast<uint8_t>(i % 256);
    codes[i] = (code | 0x80) == 0xFF ? static_cast<uint8_t>(code - 1) : code;
  }
  EXPECT_TRUE(Fp8NanScan(codes.data(), codes.size()).known_clean());
  for (uint8_t nan : {uint8_t{0x7F}, uint8_t{0xFF}})
    for (size_t at : {size_t{0}, size_t{63}, size_t{64}, size_t{500}, codes.size() - 1}) {
      std::vector<uint8_t> planted = codes;
      planted[at] = nan;
      const Fp8NanScan scan(planted.data(), planted.size());
      EXPECT_FALSE(scan.known_clean()) << int(nan) << " at " << at;
      planted[at] = 0;
      EXPECT_FALSE(scan.known_clean()) << "asked again";
    }
}

// Threads asking at once, while the first of them scans, never hear "clean" of a tensor that
// holds a NaN code; once the scan is over, all hear that a clean tensor is clean.
TEST(Fp8NanScanTest, ThreadsAskingAtOnceNeverHearAWrongClean) {
  for (bool plant : {false, true}) {
    std::vector<uint8_t> codes(8 << 20, 0x3C);
    if (plant) codes[codes.size() / 2] = 0xFF;
    const Fp8NanScan scan(codes.data(), codes.size());
    std::atomic<int> heard_clean{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&] { heard_clean += scan.known_clean(); });
    for (std::thread& t : threads) t.join();
    if (plant) {
      EXPECT_EQ(heard_clean.load(), 0);
    }
    EXPECT_EQ(scan.known_clean(), !plant);
  }
}

}  // namespace
}  // namespace dsv3
