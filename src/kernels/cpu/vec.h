// Portable 8-wide float vectors (GCC vector extensions): one AVX register with -mavx,
// two SSE registers without. FP reductions are written with explicit lanes, since the
// compiler may not reorder a scalar sum by itself (and we don't use -ffast-math).
#pragma once

#include <cstdint>

namespace dsv3::simd {

typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4)));

inline v8f load8(const float* p) { return *reinterpret_cast<const v8f_unaligned*>(p); }
inline void store8(float* p, v8f v) { *reinterpret_cast<v8f_unaligned*>(p) = v; }
inline float hsum(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

inline float dot(const float* a, const float* b, int64_t n) {
  v8f acc0 = {}, acc1 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 += load8(a + i) * load8(b + i);
    acc1 += load8(a + i + 8) * load8(b + i + 8);
  }
  for (; i + 8 <= n; i += 8) acc0 += load8(a + i) * load8(b + i);
  float sum = hsum(acc0 + acc1);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y[i] += a * x[i]
inline void axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  const v8f av = {a, a, a, a, a, a, a, a};
  for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) + av * load8(x + i));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace dsv3::simd
