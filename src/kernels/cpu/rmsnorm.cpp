#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace dsv3 {

void rmsnorm(const float* x, int64_t x_stride, int64_t T, int64_t n, const float* weight, float eps, float* y,
             int64_t y_stride) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * x_stride;
    float* yt = y + t * y_stride;
    double sum_sq = 0.0;  // double keeps the mean exact enough for any width
    for (int64_t i = 0; i < n; ++i) sum_sq += double(xt[i]) * xt[i];
    const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) yt[i] = weight[i] * (xt[i] * inv_rms);
  }
}

void rmsnorm(float* x, int64_t T, int64_t n, int64_t stride, const float* weight, float eps) {
  rmsnorm(x, stride, T, n, weight, eps, x, stride);
}

}  // namespace dsv3
