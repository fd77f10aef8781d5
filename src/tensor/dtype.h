// Storage dtypes of weights and their conversions to and from FP32.
// Arithmetic in dsv3 is FP32; these types only describe how numbers are stored.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

namespace dsv3 {

enum class DType { F32, F16, BF16, F8_E4M3 };

// safetensors spelling: "F32", "F16", "BF16", "F8_E4M3".
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
size_t dtype_size(DType dtype);

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t{h} << 16); }

// Round to nearest, ties to even; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits = f32_to_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8 E4M3 ("e4m3fn"): bias 7, no infinities, S.1111.111 is NaN, largest finite 448.
// Decoding is a lookup in a 256-entry table built at compile time.
constexpr float decode_e4m3(int q) {
  int exponent = (q >> 3) & 0xf;
  int mantissa = q & 0x7;
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

namespace detail {
template <size_t... I>
constexpr std::array<float, 256> make_e4m3_table(std::index_sequence<I...>) {
  return {decode_e4m3(static_cast<int>(I))...};
}
}  // namespace detail

inline constexpr std::array<float, 256> kE4M3ToF32 =
    detail::make_e4m3_table(std::make_index_sequence<256>{});
inline float e4m3_to_f32(uint8_t q) { return kE4M3ToF32[q]; }
// Round to nearest, ties to even; values beyond ±448 saturate to ±448; NaN -> 0x7f.
uint8_t f32_to_e4m3(float f);
inline constexpr float kE4M3Max = 448.0f;

}  // namespace dsv3
