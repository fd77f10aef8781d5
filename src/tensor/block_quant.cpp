#include "tensor/block_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace dsv3 {

namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void decode_q8_0(const uint8_t* block, float* out) {
  const float d = q8_0_scale(block);
  const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
  for (int64_t i = 0; i < kQ8_0BlockValues; ++i) out[i] = d * static_cast<float>(q[i]);
}

void decode_q4_k(const uint8_t* block, float* out) {
  const float d = f16_to_f32(load_u16(block));
  const float dmin = f16_to_f32(load_u16(block + 2));
  const uint8_t* scales = block + 4;
  const uint8_t* qs = block + 16;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    if (j < 4) {
      sc = scales[j] & 63;
      m = scales[j + 4] & 63;
    } else {
      sc = static_cast<uint8_t>((scales[j + 4] & 0xf) | ((scales[j - 4] >> 6) << 4));
      m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
    const float scale = d * static_cast<float>(sc);
    const float min = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) out[32 * j + l] = scale * static_cast<float>((q[l] >> shift) & 0xf) - min;
  }
}

void decode_q6_k(const uint8_t* block, float* out) {
  const float d = f16_to_f32(load_u16(block + 208));
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = block + 64 * half;
    const uint8_t* qh = block + 128 + 32 * half;
    const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192) + 8 * half;
    float* y = out + 128 * half;
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const int low = (ql[l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xf;
        const int high = (qh[l] >> (2 * k)) & 3;
        const float scale = d * static_cast<float>(scales[l / 16 + 2 * k]);
        y[l + 32 * k] = scale * static_cast<float>((low | (high << 4)) - 32);
      }
    }
  }
}

// Columns [c0, c1) of a row of blocks, with one format's decoder inlined into the loop (a call and a
// dtype switch per 32-value Q8_0 block were a tenth of a Q8_0 prefill).
template <void (*kDecode)(const uint8_t*, float*)>
void decode_blocks_with(int64_t block_values, size_t block_bytes, const uint8_t* row, int64_t c0, int64_t c1,
                        float* out) {
  alignas(64) float partial[kSuperBlockValues];
  for (int64_t b = c0 / block_values; b * block_values < c1; ++b) {
    const int64_t block_begin = b * block_values, block_end = block_begin + block_values;
    const int64_t begin = std::max(c0, block_begin), end = std::min(c1, block_end);
    const uint8_t* block = row + static_cast<size_t>(b) * block_bytes;
    if (begin == block_begin && end == block_end) {
      kDecode(block, out + (begin - c0));
    } else {  // a block cut by the range: decode it whole, keep the part asked for
      kDecode(block, partial);
      std::copy(partial + (begin - block_begin), partial + (end - block_begin), out + (begin - c0));
    }
  }
}

}  // namespace

void decode_blocks(DType dtype, const uint8_t* row, int64_t c0, int64_t c1, float* out) {
  const int64_t values = dtype_block_values(dtype);
  const size_t bytes = dtype_size(dtype);
  switch (dtype) {
    case DType::Q8_0: return decode_blocks_with<decode_q8_0>(values, bytes, row, c0, c1, out);
    case DType::Q4_K: return decode_blocks_with<decode_q4_k>(values, bytes, row, c0, c1, out);
    case DType::Q6_K: return decode_blocks_with<decode_q6_k>(values, bytes, row, c0, c1, out);
    default: return;  // element dtypes never reach here (Matrix::decode_row)
  }
}

uint16_t quantize_q8_0_block(const float* x, int8_t* codes) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < kQ8_0BlockValues; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite = finite && std::isfinite(x[i]);
  }
  if (!finite) {
    std::fill(codes, codes + kQ8_0BlockValues, int8_t{0});
    return f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  }
  const float d = amax / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  // round() with ties away from zero, as trunc(v + (0.5 - 2^-25 with v's sign)): exact for
  // |v| < 2^23 (here |v| <= 127), and a loop the compiler vectorises, where round() is a call.
  for (int64_t i = 0; i < kQ8_0BlockValues; ++i) {
    const float v = x[i] * inverse;
    codes[i] = static_cast<int8_t>(std::trunc(v + std::copysign(0.49999997f, v)));
  }
  return f32_to_f16(d);
}

void quantize_q8_0(const float* values, int64_t count, uint8_t* blocks) {
  for (int64_t b = 0; b < count / kQ8_0BlockValues; ++b) {
    uint8_t* block = blocks + static_cast<size_t>(b) * kQ8_0BlockBytes;
    const uint16_t d16 = quantize_q8_0_block(values + b * kQ8_0BlockValues, reinterpret_cast<int8_t*>(block + 2));
    block[0] = static_cast<uint8_t>(d16 & 0xff);
    block[1] = static_cast<uint8_t>(d16 >> 8);
  }
}

}  // namespace dsv3
