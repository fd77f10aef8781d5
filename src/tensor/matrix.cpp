#include "tensor/matrix.h"

#include <algorithm>

namespace dsv3 {

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
      const uint8_t* p = static_cast<const uint8_t*>(data) + base;
      const float* scales = scale_inv + ((first_row + r) / kFp8BlockSize) * scale_cols();
      for (int64_t c = c0; c < c1;) {
        const int64_t block_end = std::min(c1, (c / kFp8BlockSize + 1) * kFp8BlockSize);
        const float scale = scales[c / kFp8BlockSize];
        for (; c < block_end; ++c) out[c - c0] = e4m3_to_f32(p[c]) * scale;
      }
      break;
    }
  }
}

std::vector<float> decode_to_f32(const Matrix& m) {
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) m.decode_row(r, 0, m.cols, out.data() + r * m.cols);
  return out;
}

}  // namespace dsv3
