#include "tensor/fp8.h"

#include "tensor/dtype.h"

namespace dsv3 {

namespace {

// Round-to-nearest-even encoding of |f| into an OCP format with kMantissa mantissa bits
// and exponent bias kBias, written without branches so that array loops vectorise:
//   normal results: round the FP32 mantissa at bit 23 - kMantissa (a carry correctly
//   bumps the exponent) and rebias the exponent;
//   subnormal results (below 2^(1 - kBias)): the integer nearest |f| / 2^(1 - kBias - kMantissa),
//   rounded by adding 1.5 * 2^23 (whose FP32 spacing is 1) in the default rounding mode.
template <int kMantissa, int kBias>
inline uint32_t encode_magnitude(uint32_t abs_bits) {
  constexpr int kShift = 23 - kMantissa;
  constexpr uint32_t kMinNormalBits = uint32_t(127 + 1 - kBias) << 23;
  constexpr float kSubnormalScale = float(1u << (kBias - 1 + kMantissa));
  constexpr float kRoundingMagic = 12582912.0f;  // 1.5 * 2^23
  const uint32_t rounded = abs_bits + ((1u << (kShift - 1)) - 1) + ((abs_bits >> kShift) & 1u);
  const uint32_t normal = (rounded >> kShift) - (uint32_t(127 - kBias) << kMantissa);
  const float scaled = bits_to_f32(abs_bits) * kSubnormalScale + kRoundingMagic;
  const uint32_t subnormal = f32_to_bits(scaled) - f32_to_bits(kRoundingMagic);
  return abs_bits < kMinNormalBits ? subnormal : normal;
}

inline uint8_t encode_e4m3_one(float f) {
  const uint32_t bits = f32_to_bits(f), abs_bits = bits & 0x7fffffffu;
  const uint32_t sign = (bits >> 24) & 0x80u;
  uint32_t code = encode_magnitude<3, 7>(abs_bits);
  code = abs_bits > f32_to_bits(kE4M3Max) ? 0x7eu : code;  // saturate (infinity too)
  code = abs_bits > 0x7f800000u ? 0x7fu : code;             // NaN
  return static_cast<uint8_t>(sign | code);
}

inline uint8_t encode_e5m2_one(float f) {
  const uint32_t bits = f32_to_bits(f), abs_bits = bits & 0x7fffffffu;
  const uint32_t sign = (bits >> 24) & 0x80u;
  uint32_t code = encode_magnitude<2, 15>(abs_bits);
  code = abs_bits > f32_to_bits(kE5M2Max) ? 0x7bu : code;  // saturate finite values
  // Infinity (0x7c) and NaN (0x7e): added as 1 or 3 to the saturated code, which keeps
  // the loop free of a third select (GCC does not vectorise it otherwise).
  code += (abs_bits >= 0x7f800000u) + 2 * (abs_bits > 0x7f800000u);
  return static_cast<uint8_t>(sign | code);
}

}  // namespace

uint8_t f32_to_e4m3(float f) { return encode_e4m3_one(f); }
uint8_t f32_to_e5m2(float f) { return encode_e5m2_one(f); }

void encode_e4m3(const float* in, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = encode_e4m3_one(in[i]);
}

void encode_e5m2(const float* in, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = encode_e5m2_one(in[i]);
}

void decode_e4m3(const uint8_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = kE4M3ToF32[in[i]];
}

void decode_e5m2(const uint8_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = kE5M2ToF32[in[i]];
}

}  // namespace dsv3
