#include "kernels/cpu/machine_limits.h"

#include <algorithm>
#include <vector>

#include "base/clock.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec.h"

namespace dsv3 {

namespace {

using simd::kLanes;
using simd::vf;

// Sums a slice with independent accumulators, so the loads, not the adds, set the pace.
float read_slice(const float* p, size_t n) {
  vf a = {}, b = {}, c = {}, d = {};
  for (size_t i = 0; i + 4 * kLanes <= n; i += 4 * kLanes) {
    a += simd::load(p + i);
    b += simd::load(p + i + kLanes);
    c += simd::load(p + i + 2 * kLanes);
    d += simd::load(p + i + 3 * kLanes);
  }
  return simd::hsum(a + b + c + d);
}

// The same slice read as kStreams interleaved streams, a cache line of each in turn with the
// line 1 KB further requested (as the decode kernels read a block of weight rows): on a core
// where one stream's hardware prefetching leaves the memory system idle part of the time,
// this reads faster, and a floor measured with one stream alone was below what decoding
// reached (107 % of it).
float read_streams(const float* p, size_t n) {
  constexpr size_t kStreams = 8, kLine = 64 / sizeof(float), kAhead = 1024 / sizeof(float);
  const size_t len = n / kStreams / kLine * kLine;
  vf acc[kStreams] = {};
  for (size_t i = 0; i < len; i += kLine)
    for (size_t s = 0; s < kStreams; ++s) {
      const float* line = p + s * len + i;
      __builtin_prefetch(line + kAhead);
      for (size_t j = 0; j < kLine; j += kLanes) acc[s] += simd::load(line + j);
    }
  vf sum = {};
  for (const vf& a : acc) sum += a;
  return simd::hsum(sum);
}

// 8 independent FMA chains per thread (enough to cover the FMA latency on current cores).
float fma_loop(int64_t iterations, float seed) {
  vf acc[8];
  for (int k = 0; k < 8; ++k) acc[k] = simd::broadcast(seed + float(k));
  const vf m = simd::broadcast(0.999999f), a = simd::broadcast(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int k = 0; k < 8; ++k) acc[k] = acc[k] * m + a;
  vf sum = {};
  for (int k = 0; k < 8; ++k) sum += acc[k];
  return simd::hsum(sum);
}

}  // namespace

// This variant's copy (cpu_kernels.h): the FMA peak is that of the variant's vectors.
MachineLimits cpu_variant::measure_machine_limits(ThreadPool& pool) {
  MachineLimits limits;
  const size_t n = (size_t(1) << 30) / sizeof(float), threads = pool.size();
  std::vector<float> buffer(n, 1.0f);  // written once: pages are real, not the shared zero page
  std::vector<float> sink(threads);
  const size_t per_thread = n / threads;
  for (int pass = 0; pass < 6; ++pass) {  // the faster of the two ways of reading, best of three passes each
    const auto start = Clock::now();
    pool.parallel_for(threads, [&](size_t t) {
      const float* slice = buffer.data() + t * per_thread;
      sink[t] = pass % 2 == 0 ? read_slice(slice, per_thread) : read_streams(slice, per_thread);
    });
    limits.read_bytes_per_second =
        std::max(limits.read_bytes_per_second, double(per_thread * threads * sizeof(float)) / seconds_since(start));
  }
  const int64_t iterations = 100'000'000;
  for (int pass = 0; pass < 2; ++pass) {
    const auto start = Clock::now();
    pool.parallel_for(threads, [&](size_t t) { sink[t] = fma_loop(iterations, float(t)); });
    const double flops = double(threads) * double(iterations) * 8.0 * double(kLanes) * 2.0;
    limits.fma_flops_per_second = std::max(limits.fma_flops_per_second, flops / seconds_since(start));
  }
  volatile float keep = sink[0];  // the sums are used: the loops are not optimised away
  (void)keep;
  return limits;
}

}  // namespace dsv3
