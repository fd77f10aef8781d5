// RMSNorm: y = w * x / sqrt(mean(x^2) + eps), row by row, and its backward.
// Templated on the element type: float for the engine, double for gradient checks.
#pragma once

#include <cstdint>

namespace dsv3 {

// Writes the normalised rows of x (n values, rows x_stride apart) to y (rows y_stride apart).
template <typename T>
void rmsnorm(const T* x, int64_t x_stride, int64_t rows, int64_t n, const T* weight, T eps, T* y, int64_t y_stride);

// In place: rows of n values, `stride` apart.
template <typename T>
void rmsnorm(T* x, int64_t rows, int64_t n, int64_t stride, const T* weight, T eps) {
  rmsnorm(x, stride, rows, n, weight, eps, x, stride);
}

// Given the forward input x and dy = dL/dy (both [rows][n], contiguous), writes dx and
// ADDS the weight gradient to dweight. With r = 1/rms(x) and g = dy * w:
//   dx = r * g - x * r^3 * mean(g * x),   dweight += sum over rows of dy * x * r.
// The forward is recomputed from x (nothing but x is kept).
template <typename T>
void rmsnorm_backward(const T* x, const T* dy, int64_t rows, int64_t n, const T* weight, T eps, T* dx, T* dweight);

}  // namespace dsv3
