// RMSNorm: y = w * x / sqrt(mean(x^2) + eps), in FP32, row by row.
#pragma once

#include <cstdint>

namespace dsv3 {

// Normalises T rows of n floats (rows `stride` apart) in place.
void rmsnorm(float* x, int64_t T, int64_t n, int64_t stride, const float* weight, float eps);
// Writes the normalised rows of x (n floats, rows x_stride apart) to y (rows y_stride apart).
void rmsnorm(const float* x, int64_t x_stride, int64_t T, int64_t n, const float* weight, float eps, float* y,
             int64_t y_stride);

}  // namespace dsv3
