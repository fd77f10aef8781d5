#include "kernels/cpu/fp8_gemm.h"

#include <algorithm>

#include "kernels/cpu/matmul.h"
#include "tensor/fp8.h"

namespace dsv3 {

namespace {

constexpr int64_t kRun = 128;  // the promotion interval along k

// The operand's E4M3 values, unscaled (exact in FP32), laid out run by run:
// [run][rows][128], the last run zero-padded, so that every run is a contiguous matrix. Rows
// split over the pool.
std::vector<float> decode_runs(const Fp8Operand& x, int64_t k, int64_t runs, ThreadPool& pool) {
  std::vector<float> out(static_cast<size_t>(runs * x.rows * kRun), 0.0f);
  pool.parallel_for(static_cast<size_t>(x.rows), [&](size_t row) {
    const int64_t r = static_cast<int64_t>(row);
    for (int64_t run = 0; run < runs; ++run) {
      const int64_t k0 = run * kRun, n = std::min(kRun, k - k0);
      decode_e4m3(x.codes + r * k + k0, &out[static_cast<size_t>((run * x.rows + r) * kRun)], static_cast<size_t>(n));
    }
  });
  return out;
}

}  // namespace

void fp8_gemm(const Fp8Operand& a, const Fp8Operand& b, int64_t k, float* c, ThreadPool& pool) {
  const int64_t M = a.rows, N = b.rows, runs = (k + kRun - 1) / kRun;
  const std::vector<float> a_values = decode_runs(a, k, runs, pool), b_values = decode_runs(b, k, runs, pool);
  std::vector<float> partial(static_cast<size_t>(M * N));
  std::fill(c, c + M * N, 0.0f);
  for (int64_t run = 0; run < runs; ++run) {
    // The run's products summed in FP32 ...
    const Matrix b_run{DType::F32, N, kRun, &b_values[static_cast<size_t>(run * N * kRun)], nullptr, 0};
    matmul(b_run, &a_values[static_cast<size_t>(run * M * kRun)], M, partial.data(), pool);
    // ... then promoted: scaled and added to the FP32 accumulator.
    pool.parallel_for(static_cast<size_t>(M), [&](size_t mi) {
      const int64_t m = static_cast<int64_t>(mi);
      const float sa = a.scales[(m / a.rows_per_scale) * runs + run];
      for (int64_t n = 0; n < N; ++n) {
        const float sb = b.scales[(n / b.rows_per_scale) * runs + run];
        c[m * N + n] += partial[static_cast<size_t>(m * N + n)] * (sa * sb);
      }
    });
  }
}

}  // namespace dsv3
