// ggml's block-quantised weight formats (the tensors of GGUF files), laid out as
// llama.cpp's ggml-quants.c does: blocks packed back to back, little-endian, a row being
// a whole number of blocks. d and dmin are F16; "sub-block" scales are unsigned 6-bit
// (Q4_K) or signed 8-bit (Q6_K) multipliers of d.
//
//   Q8_0, 34 bytes for 32 values:   d, int8 q[32]                      x = d * q
//   Q4_K, 144 bytes for 256 values: d, dmin, scales[12], qs[128]       x = (d * sc) * q - dmin * m
//       eight sub-blocks of 32 values with 6-bit (sc, m) packed in scales[12]: for j < 4
//       sc = scales[j] & 63, m = scales[j + 4] & 63; for j >= 4 the low four bits come from
//       scales[j + 4] (sc: low nibble, m: high nibble) and the top two from the top bits of
//       scales[j - 4] (sc) and scales[j] (m). Sub-blocks 2i and 2i + 1 share qs[32i, 32i + 32):
//       the low nibbles are 2i's 4-bit q, the high nibbles 2i + 1's.
//   Q6_K, 210 bytes for 256 values: ql[128], qh[64], int8 scales[16], d  x = (d * scale) * (q - 32)
//       two halves of 128 values (ql + 64h, qh + 32h, scales + 8h); in a half, value l + 32k
//       (l < 32, k < 4) takes its low four bits from ql[l + 32 (k & 1)] (low nibble for
//       k < 2, high for k >= 2), its high two bits from bits 2k, 2k + 1 of qh[l], and its
//       scale from scales[l / 16 + 2k].
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensor/dtype.h"

namespace dsv3 {

inline constexpr int64_t kQ8_0BlockValues = 32;
inline constexpr size_t kQ8_0BlockBytes = 34;
inline constexpr int64_t kSuperBlockValues = 256;  // Q4_K and Q6_K
inline constexpr size_t kQ4_KBlockBytes = 144;
inline constexpr size_t kQ6_KBlockBytes = 210;

// A Q8_0 block's scale d (its first two bytes).
inline float q8_0_scale(const uint8_t* block) {
  uint16_t bits;
  std::memcpy(&bits, block, 2);
  return f16_to_f32(bits);
}

// Decodes values [c0, c1) of a row of blocks of a block dtype to FP32.
void decode_blocks(DType dtype, const uint8_t* row, int64_t c0, int64_t c1, float* out);

// Q8_0 with round to nearest as llama.cpp's reference quantiser does: per block of 32,
// d = max|x| / 127 (stored as F16), q = round(x / d) with ties away from zero, computed
// as x * (1 / d) with the unrounded d. `count` is a multiple of 32. A block holding a value
// that is not finite gets d = NaN and codes 0, so that it decodes to NaN.
void quantize_q8_0(const float* values, int64_t count, uint8_t* blocks);

// One such block: writes the 32 codes of x and returns d's F16 bits.
uint16_t quantize_q8_0_block(const float* x, int8_t* codes);

}  // namespace dsv3
