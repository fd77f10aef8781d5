#include "kernels/cpu/cpu_kernels.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include "base/error.h"

// Each variant's table (cpu_variant.cpp, compiled once per variant).
extern "C" const dsv3::CpuKernels dsv3_cpu_kernels_avx512bf16, dsv3_cpu_kernels_avx512, dsv3_cpu_kernels_avx2,
    dsv3_cpu_kernels_generic;

namespace dsv3 {

namespace {

struct Variant {
  const CpuKernels* kernels;
  bool (*runs_here)();
  const char* needs;  // the features runs_here checks, for the error when DSV3_CPU names one this CPU lacks
};

// Best first. Each checks the instruction sets CMakeLists.txt compiles that variant for
// (__builtin_cpu_supports also asks whether the OS saves the wider registers).
const Variant kVariants[] = {
    {&dsv3_cpu_kernels_avx512bf16,
     [] {
       return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512bf16") &&
              __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
     },
     "AVX-512 (F, BW, CD, DQ, VL) with BF16, VBMI and VNNI"},
    {&dsv3_cpu_kernels_avx512, [] { return bool(__builtin_cpu_supports("x86-64-v4")); },
     "AVX-512 (F, BW, CD, DQ, VL)"},
    {&dsv3_cpu_kernels_avx2, [] { return bool(__builtin_cpu_supports("x86-64-v3")); }, "AVX2, FMA, F16C and BMI2"},
    {&dsv3_cpu_kernels_generic, [] { return true; }, "x86-64"},
};

const CpuKernels& choose() {
  const char* forced = std::getenv("DSV3_CPU");
  if (!forced || !*forced) {
    for (const Variant& variant : kVariants)
      if (variant.runs_here()) return *variant.kernels;
  }
  for (const Variant& variant : kVariants) {
    if (std::string_view(variant.kernels->name) != forced) continue;
    if (!variant.runs_here()) fail("DSV3_CPU=", forced, ": this CPU lacks ", variant.needs);
    return *variant.kernels;
  }
  std::string names;
  for (const Variant& variant : kVariants) names += std::string(names.empty() ? "" : ", ") + variant.kernels->name;
  fail("DSV3_CPU=", forced, ": no such kernel variant (", names, ")");
}

}  // namespace

const CpuKernels& cpu_kernels() {
  static const CpuKernels& chosen = choose();
  return chosen;
}

// The engine's kernel functions, forwarded to the chosen variant.

void matmul_rows(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t y_stride,
                 int64_t row_begin, int64_t row_end, MatmulInput input) {
  cpu_kernels().matmul_rows(W, x, x_stride, T, y, y_stride, row_begin, row_end, input);
}

void matmul(const Matrix& W, const float* x, int64_t T, float* y, ThreadPool& pool, MatmulInput input) {
  cpu_kernels().matmul(W, x, T, y, pool, input);
}

void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool, MatmulInput input) {
  cpu_kernels().matmul_batch(jobs, pool, input);
}

void matmul_transposed(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t cols,
                       bool accumulate) {
  cpu_kernels().matmul_transposed(W, x, x_stride, T, y, cols, accumulate);
}

MachineLimits measure_machine_limits(ThreadPool& pool) { return cpu_kernels().measure_machine_limits(pool); }

}  // namespace dsv3
