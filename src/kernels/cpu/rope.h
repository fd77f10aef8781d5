// Rotary position embedding on INTERLEAVED pairs (x[2i], x[2i+1]), the order in which
// DeepSeek-V3 checkpoints store the rope dimensions, and its backward.
#pragma once

#include <cstdint>

namespace dsv3 {

// Fills cos/sin tables [T][n/2] for positions first_pos..first_pos+T-1:
// angle = pos * inv_freq[i] (computed in double), both scaled by `magnitude`.
template <typename T>
void rope_tables(const float* inv_freq, int64_t n, int64_t first_pos, int64_t count, float magnitude, T* cos_out,
                 T* sin_out);

// Rotates the n values at x by the table row: (a, b) -> (a cos - b sin, a sin + b cos).
template <typename T>
void rope_apply(T* x, int64_t n, const T* cos_row, const T* sin_row);

// Backward, in place on the gradient: the transposed rotation,
// (da, db) -> (da cos + db sin, -da sin + db cos).
template <typename T>
void rope_apply_backward(T* grad, int64_t n, const T* cos_row, const T* sin_row);

}  // namespace dsv3
