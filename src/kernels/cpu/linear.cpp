#include "kernels/cpu/linear.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/transpose.h"

namespace dsv3 {

namespace {

// Splits [0, n) into about 4 tasks per thread.
template <typename F>
void parallel_rows(int64_t n, ThreadPool& pool, F&& body) {
  pool.parallel_ranges(n, 1, 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) body(r);
  });
}

// The float backward pair runs on the engine's blocked kernel, matmul_transposed (a strip of
// W's columns stays in cache while the tokens pass over it; linear_backward's loops, kept for
// double, stream all of W once per token, at two loads and a store per FMA). Each element is
// the same FMA chain in the same order as in those loops, so the bits are theirs:
//   dx[t][i] = sum over o in order of dy[t][o] W[o][i]           (x := dy, W as it is)
//   dW[o][i] = dW[o][i] + sum over t in order of dy[t][o] x[t][i] (x := dy^T, W := x)
// Tasks take whole blocks of 4 of the product's tokens (its unit), about 2 per thread.
void linear_backward_f32(const float* x, const float* W, const float* dy, int64_t rows, int64_t in, int64_t out,
                         float* dx, float* dW, ThreadPool& pool) {
  if (dx) {
    const Matrix weights{DType::F32, out, in, W, nullptr, 0};
    pool.parallel_ranges(rows, 4, 2, [&](int64_t t0, int64_t t1) {
      matmul_transposed(weights, dy + t0 * out, out, t1 - t0, dx + t0 * in, in);
    });
  }
  if (dW) {
    thread_local std::vector<float> dy_transposed;
    dy_transposed.resize(static_cast<size_t>(out * rows));
    transpose(dy, rows, out, dy_transposed.data());
    const Matrix inputs{DType::F32, rows, in, x, nullptr, 0};
    const float* dy_t = dy_transposed.data();
    pool.parallel_ranges(out, 4, 2, [&](int64_t o0, int64_t o1) {
      matmul_transposed(inputs, dy_t + o0 * rows, rows, o1 - o0, dW + o0 * in, in, /*accumulate=*/true);
    });
  }
}

}  // namespace

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
  if constexpr (std::is_same_v<T, float>) {
    linear_backward_f32(x, W, dy, rows, in, out, dx, dW, pool);
  } else {
    if (dx) {
      parallel_rows(rows, pool, [&](int64_t t) {
        T* dxt = dx + t * in;
        std::fill(dxt, dxt + in, T(0));
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) dxt[i] += dy[t * out + o] * W[o * in + i];
      });
    }
    if (dW) {
      parallel_rows(out, pool, [&](int64_t o) {
        T* dw = dW + o * in;
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t i = 0; i < in; ++i) dw[i] += dy[t * out + o] * x[t * in + i];
      });
    }
  }
}

template void linear<float>(const float*, const float*, int64_t, int64_t, int64_t, float*, ThreadPool&);
template void linear<double>(const double*, const double*, int64_t, int64_t, int64_t, double*, ThreadPool&);
template void linear_backward<float>(const float*, const float*, const float*, int64_t, int64_t, int64_t, float*,
                                     float*, ThreadPool&);
template void linear_backward<double>(const double*, const double*, const double*, int64_t, int64_t, int64_t, double*,
                                      double*, ThreadPool&);

}  // namespace dsv3
