#include "kernels/cpu/transpose.h"

#include <algorithm>

namespace dsv3 {

void transpose(const float* x, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kBlock = 32;  // 32 x 32 floats: 32 lines read, 32 written
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t r1 = std::min(rows, r0 + kBlock), c1 = std::min(cols, c0 + kBlock);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) out[c * rows + r] = x[r * cols + c];
    }
}

}  // namespace dsv3
