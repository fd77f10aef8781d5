#include "tensor/dtype.h"

#include <array>
#include <cmath>

#include "base/error.h"
#include "tensor/block_quant.h"

namespace dsv3 {

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_K: return "Q4_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3})
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::Q8_0: return kQ8_0BlockBytes;
    case DType::Q4_K: return kQ4_KBlockBytes;
    case DType::Q6_K: return kQ6_KBlockBytes;
  }
  return 0;
}

int64_t dtype_block_values(DType dtype) {
  switch (dtype) {
    case DType::Q8_0: return kQ8_0BlockValues;
    case DType::Q4_K:
    case DType::Q6_K: return kSuperBlockValues;
    default: return 1;
  }
}

uint16_t f32_to_f16(float f) {
  uint32_t bits = f32_to_bits(f);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return sign | 0x7e00;                 // NaN
  if (abs_bits >= 0x477ff000u) return sign | 0x7c00;                // rounds to >= 65520: inf
  if (abs_bits < 0x38800000u) {                                     // below 2^-14: subnormal
    float magnitude = bits_to_f32(abs_bits);
    // nearbyint rounds half to even in the default rounding mode.
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(magnitude, 24)));
  }
  uint32_t rounded = abs_bits + 0xfffu + ((abs_bits >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

std::vector<uint8_t> encode_values(const float* values, size_t count, DType dtype) {
  std::vector<uint8_t> out(count / static_cast<size_t>(dtype_block_values(dtype)) * dtype_size(dtype));
  auto store_u16 = [&](size_t i, uint16_t h) { std::memcpy(out.data() + 2 * i, &h, 2); };
  switch (dtype) {
    case DType::F32: std::memcpy(out.data(), values, 4 * count); break;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) store_u16(i, f32_to_bf16(values[i]));
      break;
    case DType::F16:
      for (size_t i = 0; i < count; ++i) store_u16(i, f32_to_f16(values[i]));
      break;
    case DType::F8_E4M3:
      for (size_t i = 0; i < count; ++i) out[i] = f32_to_e4m3(values[i]);
      break;
    case DType::Q8_0: quantize_q8_0(values, static_cast<int64_t>(count), out.data()); break;
    case DType::Q4_K:
    case DType::Q6_K: fail("encoding values as ", dtype_name(dtype), " is not supported (only reading)");
  }
  return out;
}

}  // namespace dsv3
