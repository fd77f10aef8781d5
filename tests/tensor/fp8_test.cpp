#include "tensor/fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/dtype.h"

namespace dsv3 {
namespace {

// The OCP definition written out directly: (-1)^s * 2^(e - bias) * (1 + m / 2^M), and
// 2^(1 - bias) * m / 2^M for e = 0.
double ocp_value(int q, int mantissa_bits, int bias) {
  const int e = (q & 0x7f) >> mantissa_bits, m = q & ((1 << mantissa_bits) - 1);
  const double fraction = double(m) / double(1 << mantissa_bits);
  const double magnitude = e == 0 ? std::ldexp(fraction, 1 - bias) : std::ldexp(1.0 + fraction, e - bias);
  return (q & 0x80) ? -magnitude : magnitude;
}

TEST(Fp8Test, E4M3DecodesEveryCodeAsTheOcpDefinition) {
  for (int q = 0; q < 256; ++q) {
    if ((q & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(e4m3_to_f32(static_cast<uint8_t>(q)))) << q;
      continue;
    }
    EXPECT_EQ(double(e4m3_to_f32(static_cast<uint8_t>(q))), ocp_value(q, 3, 7)) << q;
  }
  // Values from the OCP specification's table.
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));    // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x07), 0.875f * std::ldexp(1.0f, -6));  // largest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));    // smallest normal
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0xfe), -448.0f);
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
}

// E5M2 is the top byte of an IEEE binary16: the compiler's _Float16 is an independent decoder.
TEST(Fp8Test, E5M2DecodesEveryCodeAsBinary16) {
  for (int q = 0; q < 256; ++q) {
    const uint16_t h = static_cast<uint16_t>(q << 8);
    _Float16 ref;
    std::memcpy(&ref, &h, 2);
    const float got = e5m2_to_f32(static_cast<uint8_t>(q));
    if (std::isnan(static_cast<float>(ref))) {
      EXPECT_TRUE(std::isnan(got)) << q;
    } else {
      EXPECT_EQ(f32_to_bits(got), f32_to_bits(static_cast<float>(ref))) << q;
      if ((q & 0x7f) != 0x7c) {
        EXPECT_EQ(double(got), ocp_value(q, 2, 15)) << q;
      }
    }
  }
  EXPECT_EQ(e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(e5m2_to_f32(0x7c), INFINITY);
}

// The expected code by brute force: the nearest finite code, ties to the even code (even
// code = even mantissa); beyond the largest finite value, saturation.
uint8_t nearest_code(float f, const std::array<float, 256>& table, uint8_t max_code) {
  const float a = std::fabs(f);
  int best = 0;
  for (int q = 1; q <= max_code; ++q) {
    const double d = std::fabs(double(table[q]) - a), best_d = std::fabs(double(table[best]) - a);
    if (d < best_d || (d == best_d && q % 2 == 0)) best = q;
  }
  if (a > table[max_code]) best = max_code;
  return static_cast<uint8_t>((std::signbit(f) ? 0x80 : 0) | best);
}

// Inputs that probe every rounding decision: each code, the midpoints between neighbours
// and their FP32 neighbours, values past the top, and random floats of every magnitude.
std::vector<float> probes(const std::array<float, 256>& table, uint8_t max_code) {
  std::vector<float> v;
  for (int q = 0; q <= max_code; ++q) {
    v.push_back(table[q]);
    if (q < max_code) {
      const float mid = float((double(table[q]) + double(table[q + 1])) / 2);
      v.insert(v.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)});
    }
  }
  v.insert(v.end(), {table[max_code] * 1.03f, table[max_code] * 1.2f, 1e30f, 1e-30f, 0.0f});
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int i = 0; i < 100000; ++i) {
    const float f = bits_to_f32(any_bits(rng));
    if (std::isfinite(f)) v.push_back(f);
    v.push_back(std::ldexp(unit(rng), int(any_bits(rng) % 48) - 30));  // mostly in range
  }
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) v.push_back(-v[i]);
  return v;
}

TEST(Fp8Test, E4M3EncodesToTheNearestCodeTiesToEvenAndSaturates) {
  const std::vector<float> inputs = probes(kE4M3ToF32, 0x7e);
  std::vector<uint8_t> batch(inputs.size());
  encode_e4m3(inputs.data(), batch.data(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(f32_to_e4m3(inputs[i]), nearest_code(inputs[i], kE4M3ToF32, 0x7e)) << inputs[i];
    ASSERT_EQ(batch[i], f32_to_e4m3(inputs[i])) << inputs[i];
  }
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);  // halfway 1.0 / 1.125: to the even code
  EXPECT_EQ(f32_to_e4m3(INFINITY), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-INFINITY), 0xfe);
  EXPECT_EQ(f32_to_e4m3(NAN) & 0x7f, 0x7f);
  EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
}

TEST(Fp8Test, E5M2EncodesToTheNearestCodeTiesToEvenAndSaturates) {
  const std::vector<float> inputs = probes(kE5M2ToF32, 0x7b);
  std::vector<uint8_t> batch(inputs.size());
  encode_e5m2(inputs.data(), batch.data(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(f32_to_e5m2(inputs[i]), nearest_code(inputs[i], kE5M2ToF32, 0x7b)) << inputs[i];
    ASSERT_EQ(batch[i], f32_to_e5m2(inputs[i])) << inputs[i];
  }
  EXPECT_EQ(f32_to_e5m2(INFINITY), 0x7c);
  EXPECT_EQ(f32_to_e5m2(-INFINITY), 0xfc);
  EXPECT_TRUE(std::isnan(e5m2_to_f32(f32_to_e5m2(NAN))));
}

TEST(Fp8Test, ArrayDecodeEqualsTheTables) {
  std::vector<uint8_t> codes(256);
  for (int q = 0; q < 256; ++q) codes[q] = static_cast<uint8_t>(q);
  std::vector<float> a(256), b(256);
  decode_e4m3(codes.data(), a.data(), 256);
  decode_e5m2(codes.data(), b.data(), 256);
  for (int q = 0; q < 256; ++q) {
    EXPECT_EQ(f32_to_bits(a[q]), f32_to_bits(kE4M3ToF32[q]));
    EXPECT_EQ(f32_to_bits(b[q]), f32_to_bits(kE5M2ToF32[q]));
  }
}

}  // namespace
}  // namespace dsv3
