#include "tensor/fp8_blocks.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/dtype.h"
#include "tensor/matrix.h"

namespace dsv3 {

namespace {
constexpr int64_t kGroupCols = kFp8BlockSize;  // the release's block width, also the tile width
}

void quantize_fp8(const float* x, int64_t rows, int64_t cols, int64_t rows_per_scale, uint8_t* q, float* scales) {
  const int64_t R = rows_per_scale, C = kGroupCols;
  const int64_t group_cols = (cols + C - 1) / C;
  for (int64_t gr = 0; gr * R < rows; ++gr) {
    for (int64_t gc = 0; gc < group_cols; ++gc) {
      const int64_t r0 = gr * R, r1 = std::min(rows, r0 + R);
      const int64_t c0 = gc * C, c1 = std::min(cols, c0 + C);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
      // A group of tiny values (a token's gradient through a near-zero routing weight) would
      // get a subnormal scale, or 0 (then 0 / 0 = NaN): the scale stays a normal number, and
      // such a group keeps fewer significant bits instead.
      const float scale = amax > 0.0f ? std::max(amax / kE4M3Max, std::numeric_limits<float>::min()) : 1.0f;
      scales[gr * group_cols + gc] = scale;
      float quotients[kGroupCols];
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) quotients[c - c0] = x[r * cols + c] / scale;
        encode_e4m3(quotients, q + r * cols + c0, static_cast<size_t>(c1 - c0));
      }
    }
  }
}

void Fp8Tensor::quantize(const float* x, int64_t n_rows, int64_t n_cols, int64_t group_rows, ThreadPool* pool) {
  rows = n_rows;
  cols = n_cols;
  rows_per_scale = group_rows;
  const int64_t groups = (rows + group_rows - 1) / group_rows, group_cols = (cols + kGroupCols - 1) / kGroupCols;
  codes.resize(static_cast<size_t>(rows * cols));
  scales.resize(static_cast<size_t>(groups * group_cols));
  auto quantize_groups = [&](int64_t g0, int64_t g1) {
    const int64_t r0 = g0 * group_rows, r1 = std::min(rows, g1 * group_rows);
    quantize_fp8(x + r0 * cols, r1 - r0, cols, group_rows, codes.data() + r0 * cols, scales.data() + g0 * group_cols);
  };
  if (pool)
    pool->parallel_ranges(groups, 1, 4, quantize_groups);
  else if (groups > 0)
    quantize_groups(0, groups);
}

std::vector<float> Fp8Tensor::dequantize() const {
  std::vector<float> out(codes.size());
  const int64_t group_cols = (cols + kGroupCols - 1) / kGroupCols;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[static_cast<size_t>(r * cols + c)] = e4m3_to_f32(codes[static_cast<size_t>(r * cols + c)]) *
                                               scales[static_cast<size_t>((r / rows_per_scale) * group_cols + c / kGroupCols)];
  return out;
}

}  // namespace dsv3
