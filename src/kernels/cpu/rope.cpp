#include "kernels/cpu/rope.h"

#include <cmath>

namespace dsv3 {

void rope_tables(const float* inv_freq, int64_t n, int64_t first_pos, int64_t T, float magnitude, float* cos_out,
                 float* sin_out) {
  const int64_t half = n / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(first_pos + t) * double(inv_freq[i]);
      cos_out[t * half + i] = static_cast<float>(std::cos(angle) * magnitude);
      sin_out[t * half + i] = static_cast<float>(std::sin(angle) * magnitude);
    }
}

void rope_apply(float* x, int64_t n, const float* cos_row, const float* sin_row) {
  for (int64_t i = 0; i < n / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos_row[i] - b * sin_row[i];
    x[2 * i + 1] = a * sin_row[i] + b * cos_row[i];
  }
}

}  // namespace dsv3
