// Portable float vectors (GCC vector extensions) of the widest size the build targets:
// 16 lanes with AVX-512, else 8 (one AVX register, or two SSE registers without AVX).
// FP reductions are written with explicit lanes, since the compiler may not reorder a
// scalar sum by itself (and we don't use -ffast-math).
#pragma once

#include <cstdint>
#include <immintrin.h>

namespace dsv3::simd {

#ifdef __AVX512F__
inline constexpr int64_t kLanes = 16;
#else
inline constexpr int64_t kLanes = 8;
#endif

typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef float vf_unaligned __attribute__((vector_size(kLanes * 4), aligned(4)));

inline vf load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }
// v held in a register from here on. A vector loaded once and used by several FMAs is
// otherwise folded into each as a memory operand, loaded again per use: in a 4 x 4 tile that
// is 20 loads per 16 FMAs, more than the load ports issue. (No instruction is emitted.)
template <typename Vector>
inline Vector in_register(Vector v) {
#ifdef __AVX__
  asm("" : "+v"(v));
#endif  // (without AVX a vf is two SSE registers, which the constraint cannot name)
  return v;
}
inline void store(float* p, vf v) { *reinterpret_cast<vf_unaligned*>(p) = v; }
// a * b + c, rounded once where the CPU has FMA (every kernel variant but the generic one),
// else twice. The products whose bits must not depend on a loop's shape (prefill, decoding
// and speculative verification agree bit for bit) call these rather than write a * b + c,
// which leaves contracting it to the compiler: tuned for AMD Zen, GCC 12 left some chains as
// a multiply and an add in some loops and not in others.
inline vf fma(vf a, vf b, vf c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  return a * b + c;  // (no FMA instruction to contract it into)
#endif
}
inline float fma(float a, float b, float c) {
#ifdef __FMA__
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}
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

// hsum of 16 vectors at once, each summed in hsum's order (out[k] is hsum(v[k]) bit for bit),
// with the pairwise additions of several vectors sharing instructions: about a third of the
// shuffles and additions of 16 hsums (which end every 512-column block of a 4 x 4 matrix
// product tile). Each step halves the lanes that a vector's partial sums fill and packs two
// vectors' partial sums into one, in hsum's order: 8 lanes (16-lane vectors), 4, 2, then 1.
[[gnu::always_inline]] inline void hsum16(const vf (&v)[16], float (&out)[16]) {
  constexpr int kChunks = kLanes / 4;  // 128-bit chunks per vector
  vf four[16 / kChunks];               // chunk k of four[q]: v[q * kChunks + k]'s 4-lane sums
#ifdef __AVX512F__
  vf eight[8];  // lanes 0-7: v[2p]'s 8-lane sums, 8-15: v[2p + 1]'s
  for (int p = 0; p < 8; ++p)
    eight[p] = __builtin_shufflevector(v[2 * p], v[2 * p + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(v[2 * p], v[2 * p + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                       31);
  for (int q = 0; q < 4; ++q)
    four[q] =
        __builtin_shufflevector(eight[2 * q], eight[2 * q + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
        __builtin_shufflevector(eight[2 * q], eight[2 * q + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  // In each 128-bit chunk: lanes i0, i1 of a, then of b, plus lanes i2, i3 of a, then of b.
#define DSV3_CHUNKWISE(a, b, i0, i1, i2, i3)                                                                       \
  __builtin_shufflevector(a, b, i0, i1, 16 + i0, 16 + i1, 4 + i0, 4 + i1, 20 + i0, 20 + i1, 8 + i0, 8 + i1, 24 + i0, \
                          24 + i1, 12 + i0, 12 + i1, 28 + i0, 28 + i1) +                                           \
      __builtin_shufflevector(a, b, i2, i3, 16 + i2, 16 + i3, 4 + i2, 4 + i3, 20 + i2, 20 + i3, 8 + i2, 8 + i3,    \
                              24 + i2, 24 + i3, 12 + i2, 12 + i3, 28 + i2, 28 + i3)
#else
  for (int q = 0; q < 8; ++q)
    four[q] = __builtin_shufflevector(v[2 * q], v[2 * q + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
              __builtin_shufflevector(v[2 * q], v[2 * q + 1], 4, 5, 6, 7, 12, 13, 14, 15);
#define DSV3_CHUNKWISE(a, b, i0, i1, i2, i3)                                                         \
  __builtin_shufflevector(a, b, i0, i1, 8 + i0, 8 + i1, 4 + i0, 4 + i1, 12 + i0, 12 + i1) +          \
      __builtin_shufflevector(a, b, i2, i3, 8 + i2, 8 + i3, 4 + i2, 4 + i3, 12 + i2, 12 + i3)
#endif
  constexpr int kFours = 16 / kChunks, kTwos = kFours / 2, kOnes = kTwos / 2;
  vf two[kTwos], one[kOnes];
  for (int m = 0; m < kTwos; ++m) two[m] = DSV3_CHUNKWISE(four[2 * m], four[2 * m + 1], 0, 1, 2, 3);
  for (int n = 0; n < kOnes; ++n) one[n] = DSV3_CHUNKWISE(two[2 * n], two[2 * n + 1], 0, 2, 1, 3);
#undef DSV3_CHUNKWISE
  // Lane 4k + j of one[n] holds the sum of v[n * kLanes + kChunks * j + k].
  for (int n = 0; n < kOnes; ++n)
    for (int k = 0; k < kChunks; ++k)
      for (int j = 0; j < 4; ++j) out[n * kLanes + kChunks * j + k] = one[n][4 * k + j];
}

}  // namespace dsv3::simd
