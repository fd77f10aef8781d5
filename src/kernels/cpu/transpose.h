// out[c][r] = x[r][c] for an x of rows x cols floats (out is cols x rows). In square blocks,
// so that both sides are read and written a cache line at a time rather than a float per
// line (the backward passes transpose token-by-feature matrices of megabytes).
#pragma once

#include <cstdint>

namespace dsv3 {

void transpose(const float* x, int64_t rows, int64_t cols, float* out);

}  // namespace dsv3
