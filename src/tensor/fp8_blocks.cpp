#include "tensor/fp8_blocks.h"

#include <algorithm>
#include <cmath>

#include "tensor/dtype.h"
#include "tensor/matrix.h"

namespace dsv3 {

void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv) {
  const int64_t B = kFp8BlockSize;
  const int64_t block_cols = (cols + B - 1) / B;
  for (int64_t br = 0; br * B < rows; ++br) {
    for (int64_t bc = 0; bc < block_cols; ++bc) {
      const int64_t r0 = br * B, r1 = std::min(rows, r0 + B);
      const int64_t c0 = bc * B, c1 = std::min(cols, c0 + B);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float scale = amax > 0.0f ? amax / kE4M3Max : 1.0f;
      scale_inv[br * block_cols + bc] = scale;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) q[r * cols + c] = f32_to_e4m3(w[r * cols + c] / scale);
    }
  }
}

}  // namespace dsv3
