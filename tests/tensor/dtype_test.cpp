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

// _Float16 is the compiler's IEEE binary16, an implementation independent of ours.
TEST(DTypeTest, F16DecodeMatchesCompilerForAllCodes) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    _Float16 ref;
    std::memcpy(&ref, &h, 2);
    const float expected = static_cast<float>(ref);
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

TEST(DTypeTest, E4M3KnownValues) {
  EXPECT_EQ(e4m3_to_f32(0x00), 0.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0xfe), -448.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xff)));
}

TEST(DTypeTest, E4M3EncodeInvertsDecodeAndSaturates) {
  for (int q = 0; q < 256; ++q) {
    if (q == 0x7f || q == 0xff) continue;
    EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(q))), q == 0x80 ? 0x80 : q) << q;
  }
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-1e6f), 0xfe);
  EXPECT_EQ(f32_to_e4m3(NAN), 0x7f);
  // 1.0625 is halfway between 1.0 (0x38, even) and 1.125 (0x39): ties to even.
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3a);  // halfway 1.125/1.25: to 0x3a (even)
}

}  // namespace
}  // namespace dsv3
