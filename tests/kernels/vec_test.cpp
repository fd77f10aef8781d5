#include "kernels/cpu/vec.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

namespace dsv3 {
namespace {

using simd::kLanes;
using simd::vf;

// hsum's order written out lane by lane: the upper half of the lanes added to the lower
// half, until one lane is left.
float pairwise_sum(const vf& v) {
  float lanes[kLanes];
  for (int64_t i = 0; i < kLanes; ++i) lanes[i] = v[i];
  for (int64_t width = kLanes / 2; width >= 1; width /= 2)
    for (int64_t i = 0; i < width; ++i) lanes[i] = lanes[i] + lanes[i + width];
  return lanes[0];
}

// Lanes of very different magnitudes and signs, so that any other order of the additions
// (or a sum landing in another vector's place) changes the bits.
TEST(VecTest, Hsum16IsEachVectorsHsumBitForBit) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int trial = 0; trial < 200; ++trial) {
    vf v[16];
    for (vf& vector : v)
      for (int64_t i = 0; i < kLanes; ++i) vector[i] = std::ldexp(mantissa(rng), exponent(rng));
    float sums[16];
    simd::hsum16(v, sums);
    for (int k = 0; k < 16; ++k) {
      EXPECT_EQ(std::bit_cast<uint32_t>(sums[k]), std::bit_cast<uint32_t>(pairwise_sum(v[k]))) << "vector " << k;
      EXPECT_EQ(std::bit_cast<uint32_t>(sums[k]), std::bit_cast<uint32_t>(simd::hsum(v[k]))) << "vector " << k;
    }
  }
}

}  // namespace
}  // namespace dsv3
