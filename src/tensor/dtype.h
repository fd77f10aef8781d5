// Storage dtypes of weights and their conversions to and from FP32.
// Arithmetic in dsv3 is FP32; these types only describe how numbers are stored.
// Q8_0, Q4_K and Q6_K are ggml's block-quantised formats (GGUF files): a row is a whole
// number of fixed-size blocks, each holding 32 or 256 values with their scales
// (tensor/block_quant.h has the layouts).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/fp8.h"

namespace dsv3 {

enum class DType { F32, F16, BF16, F8_E4M3, Q8_0, Q4_K, Q6_K };

// safetensors spelling: "F32", "F16", "BF16", "F8_E4M3"; ggml's for the block formats.
std::string_view dtype_name(DType dtype);
// The safetensors dtypes only: a block format is never a safetensors dtype.
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes of one element, or of one block for the block formats.
size_t dtype_size(DType dtype);
// Values per block: 1 for element dtypes.
int64_t dtype_block_values(DType dtype);
// Bytes of a row of `cols` values (a multiple of dtype_block_values).
inline size_t dtype_row_bytes(DType dtype, int64_t cols) {
  return static_cast<size_t>(cols / dtype_block_values(dtype)) * dtype_size(dtype);
}

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

// F16 (IEEE binary16) to FP32, exact: the compiler's _Float16 conversion, inline (one
// instruction with F16C) since block formats convert a scale per 32 values.
inline float f16_to_f32(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }
uint16_t f32_to_f16(float f);

// `count` FP32 values stored in dtype: rounded to nearest even (BF16, F16, E4M3 without
// scales), or quantised to Q8_0 blocks (count a multiple of 32). Q4_K and Q6_K are read-only.
std::vector<uint8_t> encode_values(const float* values, size_t count, DType dtype);

}  // namespace dsv3
