// Portable float vectors (GCC vector extensions) of the widest size the build targets:
// 16 lanes with AVX-512, else 8 (one AVX register, or two SSE registers without AVX).
// FP reductions are written with explicit lanes, since the compiler may not reorder a
// scalar sum by itself (and we don't use -ffast-math).
#pragma once

#include <cstdint>

namespace dsv3::simd {

#ifdef __AVX512F__
inline constexpr int64_t kLanes = 16;
#else
inline constexpr int64_t kLanes = 8;
#endif

typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef float vf_unaligned __attribute__((vector_size(kLanes * 4), aligned(4)));

inline vf load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vf_unaligned*>(p) = v; }
// Lane 0 shuffled into every lane (vf{} + a would be an addition the compiler must keep, since
// 0 + -0 is +0: a scalar add per use; a lane-by-lane loop becomes masked inserts).
typedef int32_t vlane __attribute__((vector_size(kLanes * 4)));
inline vf broadcast(float a) { return __builtin_shuffle(vf{a}, vlane{}); }
// The lanes summed pairwise (halves, then halves of those): a fixed order, so every caller
// gets the same bits for the same lanes, in log2(kLanes) vector additions.
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
inline float hsum(vf v) {
#ifdef __AVX512F__
  const vf8 eight = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#else
  const vf8 eight = v;
#endif
  const vf4 four = __builtin_shufflevector(eight, eight, 0, 1, 2, 3) + __builtin_shufflevector(eight, eight, 4, 5, 6, 7);
  const vf4 two = four + __builtin_shufflevector(four, four, 2, 3, 0, 1);
  return two[0] + two[1];
}

// y[i] += a * x[i]
inline void axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  const vf av = broadcast(a);
  for (; i + kLanes <= n; i += kLanes) store(y + i, load(y + i) + av * load(x + i));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace dsv3::simd
