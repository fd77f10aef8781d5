#include "tensor/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace dsv3 {
namespace {

TEST(DTypeTest, NamesRoundTrip) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3}) EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  EXPECT_FALSE(dtype_from_name("F64").has_value());
  EXPECT_FALSE(dtype_from_name("f32").has_value());
}

// Every F16 code against IEEE binary16's definition: sign, 5 exponent bits (bias 15), 10
// mantissa bits; exponent 0 holds zero and the subnormals m * 2^-24, exponent 31 inf and NaN.
TEST(DTypeTest, F16DecodeMatchesTheDefinitionForAllCodes) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    const uint32_t exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    double magnitude = exponent == 0 ? std::ldexp(double(mantissa), -24)
                                     : std::ldexp(1.0 + mantissa / 1024.0, int(exponent) - 15);
    if (exponent == 31) magnitude = mantissa == 0 ? INFINITY : NAN;
    const float expected = static_cast<float>(bits & 0x8000 ? -magnitude : magnitude);
    const float got = f16_to_f32(h);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << bits;
    } else {
      EXPECT_EQ(f32_to_bits(got), f32_to_bits(expected)) << bits;
    }
  }
}

TEST(DTypeTest, F16EncodeMatchesCompilerRounding) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    const float f = bits_to_f32(any_bits(rng));
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t expected;
    std::memcpy(&expected, &ref, 2);
    ASSERT_EQ(f32_to_f16(f), expected) << f;
  }
}

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808001)), 0x3f81);  // above the tie
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
}

}  // namespace
}  // namespace dsv3
