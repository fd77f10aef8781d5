#include "kernels/cpu/rope.h"

#include <cmath>

namespace dsv3 {

template <typename T>
void rope_tables(const float* inv_freq, int64_t n, int64_t first_pos, int64_t count, float magnitude, T* cos_out,
                 T* sin_out) {
  const int64_t half = n / 2;
  for (int64_t t = 0; t < count; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(first_pos + t) * double(inv_freq[i]);
      cos_out[t * half + i] = static_cast<T>(std::cos(angle) * magnitude);
      sin_out[t * half + i] = static_cast<T>(std::sin(angle) * magnitude);
    }
}

template <typename T>
void rope_apply(T* x, int64_t n, const T* cos_row, const T* sin_row) {
  for (int64_t i = 0; i < n / 2; ++i) {
    const T a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos_row[i] - b * sin_row[i];
    x[2 * i + 1] = a * sin_row[i] + b * cos_row[i];
  }
}

template <typename T>
void rope_apply_backward(T* grad, int64_t n, const T* cos_row, const T* sin_row) {
  for (int64_t i = 0; i < n / 2; ++i) {
    const T da = grad[2 * i], db = grad[2 * i + 1];
    grad[2 * i] = da * cos_row[i] + db * sin_row[i];
    grad[2 * i + 1] = -da * sin_row[i] + db * cos_row[i];
  }
}

#define DSV3_INSTANTIATE(T)                                                                   \
  template void rope_tables<T>(const float*, int64_t, int64_t, int64_t, float, T*, T*);       \
  template void rope_apply<T>(T*, int64_t, const T*, const T*);                               \
  template void rope_apply_backward<T>(T*, int64_t, const T*, const T*);
DSV3_INSTANTIATE(float)
DSV3_INSTANTIATE(double)
#undef DSV3_INSTANTIATE

}  // namespace dsv3
