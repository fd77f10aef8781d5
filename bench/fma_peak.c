// FP32 multiply-add peak of this machine: every thread runs independent chains of vector
// FMAs (enough to hide the latency) on registers only. Prints GFLOP/s (2 per FMA lane).
//   cc -O2 -march=native -fopenmp bench/fma_peak.c -o fma_peak && ./fma_peak THREADS
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float vf __attribute__((vector_size(64)));  // 16 lanes (two AVX2 registers without AVX-512)
enum { kChains = 12, kIterations = 20000000 };

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
  float sink = 0;
  const double start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
    vf acc[kChains], x = {0}, y = {0};
    for (int i = 0; i < 16; ++i) x[i] = 1.0f + 1e-7f * (float)i, y[i] = 0.999999f;
    for (int c = 0; c < kChains; ++c) acc[c] = x * (float)c;
    for (long it = 0; it < kIterations; ++it)
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * y + x;
    for (int c = 0; c < kChains; ++c)
      for (int i = 0; i < 16; ++i) sink += acc[c][i];
  }
  const double seconds = omp_get_wtime() - start;
  printf("%.1f\n", 2.0 * 16 * kChains * (double)kIterations * threads / seconds / 1e9);
  return sink == 12345.0f;  // keeps the work alive
}
