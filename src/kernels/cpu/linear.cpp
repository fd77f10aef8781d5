#include "kernels/cpu/linear.h"

#include <algorithm>
#include <type_traits>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/vec.h"

namespace dsv3 {

namespace {

// Splits [0, n) into about 4 tasks per thread.
template <typename F>
void parallel_rows(int64_t n, ThreadPool& pool, F&& body) {
  if (n <= 0) return;
  const int64_t tasks = std::min<int64_t>(n, static_cast<int64_t>(pool.size()) * 4);
  const int64_t per_task = (n + tasks - 1) / tasks;
  pool.parallel_for(static_cast<size_t>(tasks), [&](size_t i) {
    const int64_t begin = static_cast<int64_t>(i) * per_task;
    const int64_t end = std::min(n, begin + per_task);
    for (int64_t r = begin; r < end; ++r) body(r);
  });
}

}  // namespace

// y[i] += a * x[i], vectorised for float.
template <typename T>
void axpy(T a, const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    simd::axpy(a, x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  }
}

template <typename T>
void linear(const T* x, const T* W, int64_t rows, int64_t in, int64_t out, T* y, ThreadPool& pool) {
  if constexpr (std::is_same_v<T, float>) {  // the engine's blocked kernel over an F32 weight view
    matmul(Matrix{DType::F32, out, in, W, nullptr, 0}, x, rows, y, pool);
    return;
  }
  parallel_rows(out, pool, [&](int64_t o) {
    const T* w = W + o * in;
    for (int64_t t = 0; t < rows; ++t) {
      const T* xt = x + t * in;
      T sum = 0;
      for (int64_t i = 0; i < in; ++i) sum += w[i] * xt[i];
      y[t * out + o] = sum;
    }
  });
}

template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, int64_t rows, int64_t in, int64_t out, T* dx, T* dW,
                     ThreadPool& pool) {
  if (dx) {
    parallel_rows(rows, pool, [&](int64_t t) {
      T* dxt = dx + t * in;
      std::fill(dxt, dxt + in, T(0));
      for (int64_t o = 0; o < out; ++o) axpy(dy[t * out + o], W + o * in, dxt, in);
    });
  }
  if (dW) {
    parallel_rows(out, pool, [&](int64_t o) {
      T* dw = dW + o * in;
      for (int64_t t = 0; t < rows; ++t) axpy(dy[t * out + o], x + t * in, dw, in);
    });
  }
}

template void linear<float>(const float*, const float*, int64_t, int64_t, int64_t, float*, ThreadPool&);
template void linear<double>(const double*, const double*, int64_t, int64_t, int64_t, double*, ThreadPool&);
template void linear_backward<float>(const float*, const float*, const float*, int64_t, int64_t, int64_t, float*,
                                     float*, ThreadPool&);
template void linear_backward<double>(const double*, const double*, const double*, int64_t, int64_t, int64_t, double*,
                                      double*, ThreadPool&);

}  // namespace dsv3
