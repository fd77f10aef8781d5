#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace dsv3 {

namespace {

// max and log(sum(exp(x - max))) of one row, in double.
template <typename T>
void log_sum_exp(const T* x, int64_t n, double& max, double& log_sum) {
  max = double(*std::max_element(x, x + n));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - max);
  log_sum = std::log(sum);
}

}  // namespace

template <typename T>
double cross_entropy(const T* logits, const int32_t* targets, int64_t rows, int64_t vocab) {
  double total = 0.0;
  for (int64_t t = 0; t < rows; ++t) {
    if (targets[t] < 0) continue;
    double max, log_sum;
    log_sum_exp(logits + t * vocab, vocab, max, log_sum);
    total += max + log_sum - double(logits[t * vocab + targets[t]]);
  }
  return total;
}

template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, int64_t rows, int64_t vocab, T scale, T* dlogits) {
  for (int64_t t = 0; t < rows; ++t) {
    T* d = dlogits + t * vocab;
    if (targets[t] < 0) {
      std::fill(d, d + vocab, T(0));
      continue;
    }
    double max, log_sum;
    log_sum_exp(logits + t * vocab, vocab, max, log_sum);
    for (int64_t i = 0; i < vocab; ++i) d[i] = static_cast<T>(std::exp(double(logits[t * vocab + i]) - max - log_sum)) * scale;
    d[targets[t]] -= scale;
  }
}

template double cross_entropy<float>(const float*, const int32_t*, int64_t, int64_t);
template double cross_entropy<double>(const double*, const int32_t*, int64_t, int64_t);
template void cross_entropy_backward<float>(const float*, const int32_t*, int64_t, int64_t, float, float*);
template void cross_entropy_backward<double>(const double*, const int32_t*, int64_t, int64_t, double, double*);

}  // namespace dsv3
