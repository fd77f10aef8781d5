// The kernels whose speed hangs on the instruction set (matmul.h, amx_matmul.h,
// machine_limits.h) are compiled once per CPU variant, and the process picks one at start:
//   avx512bf16  AVX-512 (F, BW, CD, DQ, VL) with BF16, VBMI and VNNI; AMX tiles where the kernel
//               grants them (Sapphire Rapids and later, Zen 4 without AMX)
//   avx512      AVX-512 F, BW, CD, DQ, VL (x86-64-v4: Skylake-SP, Ice Lake)
//   avx2        AVX2, FMA, F16C, BMI2 (x86-64-v3: Haswell and later, Zen)
//   generic     x86-64's SSE2, for any other CPU
// The best one this CPU runs is chosen, unless DSV3_CPU names another (tests run every
// variant this way). Results are each variant's own: AVX-512 sums 16 lanes, AVX2 8, so the
// last bits of a dot product differ between variants; within one, they never depend on
// the thread count or on how many tokens share a pass.
//
// CMakeLists.txt builds each variant's copy of those files with its flags, partially links it
// and makes every symbol but its table (below) local: an inline function or template compiled
// for AVX-512 can then never stand in for the same function in code that runs on any CPU.
#pragma once

#include "kernels/cpu/machine_limits.h"
#include "kernels/cpu/matmul.h"

namespace dsv3 {

struct CpuKernels {
  const char* name;
  decltype(&dsv3::matmul_rows) matmul_rows;
  decltype(&dsv3::matmul) matmul;
  decltype(&dsv3::matmul_batch) matmul_batch;
  decltype(&dsv3::matmul_transposed) matmul_transposed;
  decltype(&dsv3::measure_machine_limits) measure_machine_limits;
  bool (*amx_usable)();  // whether this variant's kBF16 prefill runs on AMX tiles on this CPU
};

// The variant this process uses, chosen on first use. Throws dsv3::Error when DSV3_CPU names
// an unknown variant or one this CPU cannot run.
const CpuKernels& cpu_kernels();

// What each variant's copy defines (its table points at these); the rest of the engine calls
// the functions of matmul.h and machine_limits.h, which go through cpu_kernels(). Inside a
// variant, calls name these qualified (cpu_variant::matmul_rows): unqualified, argument-dependent
// lookup would also find dsv3::matmul_rows.
namespace cpu_variant {
decltype(dsv3::matmul_rows) matmul_rows;
decltype(dsv3::matmul) matmul;
decltype(dsv3::matmul_batch) matmul_batch;
decltype(dsv3::matmul_transposed) matmul_transposed;
decltype(dsv3::measure_machine_limits) measure_machine_limits;
}  // namespace cpu_variant

}  // namespace dsv3
