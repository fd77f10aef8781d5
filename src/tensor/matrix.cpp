#include "tensor/matrix.h"

#include <algorithm>
#include <cmath>

#include "tensor/block_quant.h"

namespace dsv3 {

bool Fp8NanScan::known_clean() const {
  uint8_t state = state_.load(std::memory_order_acquire);
  if (state == kNotScanned && state_.compare_exchange_strong(state, kScanning, std::memory_order_acquire)) {
    uint8_t nan = 0;  // (a loop the compiler vectorises)
    for (size_t i = 0; i < count_; ++i) nan |= (codes_[i] | 0x80) == 0xFF;
    state = nan ? kHoldsNan : kClean;
    state_.store(state, std::memory_order_release);
  }
  return state == kClean;
}

void Matrix::decode_row(int64_t r, int64_t c0, int64_t c1, float* out) const {
  const size_t base = static_cast<size_t>(r * cols);
  switch (dtype) {
    case DType::F32: {
      const float* p = static_cast<const float*>(data) + base;
      for (int64_t c = c0; c < c1; ++c) out[c - c0] = p[c];
      break;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + base;
      for (int64_t c = c0; c < c1; ++c) out[c - c0] = bf16_to_f32(p[c]);
      break;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + base;
      for (int64_t c = c0; c < c1; ++c) out[c - c0] = f16_to_f32(p[c]);
      break;
    }
    case DType::F8_E4M3: {
      // Without a table lookup, so that the loop vectorises: an E4M3 code's exponent and
      // mantissa bits put in FP32's fields (sign to sign) give the value times 2^-120
      // exactly, subnormals included (they land on FP32 subnormals). 2^120 folds into
      // the block scale, so each value is e4m3(q) * scale rounded once, as the
      // definition says. The NaN codes stay NaN.
      const uint8_t* p = static_cast<const uint8_t*>(data) + base;
      const float* scales = row_scales(r);
      for (int64_t c = c0; c < c1;) {
        const int64_t block_end = std::min(c1, (c / kFp8BlockSize + 1) * kFp8BlockSize);
        const float scale = scales[c / kFp8BlockSize];
        const float folded = scale * 0x1p120f;
        if (std::isfinite(folded)) {
          for (; c < block_end; ++c) {
            const uint32_t q = p[c];
            const float x = bits_to_f32(((q & 0x80u) << 24) | ((q & 0x7fu) << 20)) * folded;
            out[c - c0] = (q & 0x7fu) == 0x7fu ? __builtin_nanf("") : x;
          }
        } else {  // a scale of 2^8 or more (never in practice): the table
          for (; c < block_end; ++c) out[c - c0] = e4m3_to_f32(p[c]) * scale;
        }
      }
      break;
    }
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q6_K:
      decode_blocks(dtype, static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes(), c0, c1, out);
      break;
  }
}

std::vector<float> decode_to_f32(const Matrix& m) {
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) m.decode_row(r, 0, m.cols, out.data() + r * m.cols);
  return out;
}

}  // namespace dsv3
