// The two OCP 8-bit floating-point formats (OCP 8-bit Floating Point Specification, 2023):
//   E4M3 ("e4m3fn"): bias 7, no infinities, S.1111.111 is NaN, largest finite 448. DeepSeek-V3
//                    stores weights and trains in it.
//   E5M2:            bias 15, IEEE-like (S.11111.00 is infinity, S.11111.xx NaN), largest
//                    finite 57344: the top byte of an IEEE binary16.
// Encoding rounds to nearest, ties to even, and saturates: finite values beyond the largest
// finite one become it (the "satfinite" conversion FP8 training uses, so a scale computed
// from an amax can never overflow to NaN). NaN stays NaN; E5M2 keeps infinities.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace dsv3 {

constexpr float decode_e4m3(int q) {
  const int exponent = (q >> 3) & 0xf, mantissa = q & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) {
    magnitude = __builtin_nanf("");
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) / 512.0f;  // subnormal: m/8 * 2^-6
  } else {
    magnitude = 1.0f + static_cast<float>(mantissa) / 8.0f;
    for (int e = exponent; e > 7; --e) magnitude *= 2.0f;
    for (int e = exponent; e < 7; ++e) magnitude /= 2.0f;
  }
  return (q & 0x80) ? -magnitude : magnitude;
}

constexpr float decode_e5m2(int q) {
  const int exponent = (q >> 2) & 0x1f, mantissa = q & 0x3;
  float magnitude;
  if (exponent == 0x1f) {
    magnitude = mantissa == 0 ? __builtin_inff() : __builtin_nanf("");
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) / 65536.0f;  // subnormal: m/4 * 2^-14
  } else {
    magnitude = 1.0f + static_cast<float>(mantissa) / 4.0f;
    for (int e = exponent; e > 15; --e) magnitude *= 2.0f;
    for (int e = exponent; e < 15; ++e) magnitude /= 2.0f;
  }
  return (q & 0x80) ? -magnitude : magnitude;
}

namespace detail {
template <size_t... I>
constexpr std::array<float, 256> make_fp8_table(float (*decode)(int), std::index_sequence<I...>) {
  return {decode(static_cast<int>(I))...};
}
}  // namespace detail

// Decoding is a lookup in 256-entry tables built at compile time.
inline constexpr std::array<float, 256> kE4M3ToF32 = detail::make_fp8_table(decode_e4m3, std::make_index_sequence<256>{});
inline constexpr std::array<float, 256> kE5M2ToF32 = detail::make_fp8_table(decode_e5m2, std::make_index_sequence<256>{});
inline float e4m3_to_f32(uint8_t q) { return kE4M3ToF32[q]; }
inline float e5m2_to_f32(uint8_t q) { return kE5M2ToF32[q]; }

inline constexpr float kE4M3Max = 448.0f;
inline constexpr float kE5M2Max = 57344.0f;

// NaN -> 0x7f (with the sign of the input).
uint8_t f32_to_e4m3(float f);
// NaN -> 0x7e, ±infinity -> ±infinity (0x7c / 0xfc).
uint8_t f32_to_e5m2(float f);

// Whole arrays, vectorised (branch-free loops the compiler turns into SIMD).
void encode_e4m3(const float* in, uint8_t* out, size_t n);
void encode_e5m2(const float* in, uint8_t* out, size_t n);
void decode_e4m3(const uint8_t* in, float* out, size_t n);
void decode_e5m2(const uint8_t* in, float* out, size_t n);

}  // namespace dsv3
