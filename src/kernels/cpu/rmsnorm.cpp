#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace dsv3 {

namespace {

// 1 / sqrt(mean(x^2) + eps), the sum in double so any width stays exact enough.
template <typename T>
T inverse_rms(const T* x, int64_t n, T eps) {
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += double(x[i]) * double(x[i]);
  return static_cast<T>(1.0 / std::sqrt(sum_sq / double(n) + double(eps)));
}

}  // namespace

template <typename T>
void rmsnorm(const T* x, int64_t x_stride, int64_t rows, int64_t n, const T* weight, T eps, T* y, int64_t y_stride) {
  for (int64_t t = 0; t < rows; ++t) {
    const T* xt = x + t * x_stride;
    T* yt = y + t * y_stride;
    const T r = inverse_rms(xt, n, eps);
    for (int64_t i = 0; i < n; ++i) yt[i] = weight[i] * (xt[i] * r);
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* dy, int64_t rows, int64_t n, const T* weight, T eps, T* dx, T* dweight) {
  for (int64_t t = 0; t < rows; ++t) {
    const T* xt = x + t * n;
    const T* dyt = dy + t * n;
    T* dxt = dx + t * n;
    const T r = inverse_rms(xt, n, eps);
    double gx = 0.0;  // sum of (dy * w) * x
    for (int64_t i = 0; i < n; ++i) gx += double(dyt[i] * weight[i]) * double(xt[i]);
    const T correction = static_cast<T>(gx / double(n)) * r * r * r;
    for (int64_t i = 0; i < n; ++i) {
      dxt[i] = r * dyt[i] * weight[i] - xt[i] * correction;
      dweight[i] += dyt[i] * xt[i] * r;
    }
  }
}

template void rmsnorm<float>(const float*, int64_t, int64_t, int64_t, const float*, float, float*, int64_t);
template void rmsnorm<double>(const double*, int64_t, int64_t, int64_t, const double*, double, double*, int64_t);
template void rmsnorm_backward<float>(const float*, const float*, int64_t, int64_t, const float*, float, float*, float*);
template void rmsnorm_backward<double>(const double*, const double*, int64_t, int64_t, const double*, double, double*,
                                       double*);

}  // namespace dsv3
