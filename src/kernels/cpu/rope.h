// Rotary position embedding on INTERLEAVED pairs (x[2i], x[2i+1]), the order in which
// DeepSeek-V3 checkpoints store the rope dimensions.
#pragma once

#include <cstdint>

namespace dsv3 {

// Fills cos/sin tables [T][n/2] for positions first_pos..first_pos+T-1:
// angle = pos * inv_freq[i] (computed in double), both scaled by `magnitude`.
void rope_tables(const float* inv_freq, int64_t n, int64_t first_pos, int64_t T, float magnitude, float* cos_out,
                 float* sin_out);

// Rotates the n values at x by the table row: (a, b) -> (a cos - b sin, a sin + b cos).
void rope_apply(float* x, int64_t n, const float* cos_row, const float* sin_row);

}  // namespace dsv3
