// One CPU variant's table (cpu_kernels.h), compiled once per variant with its instruction set:
// CMake names the variant (DSV3_CPU_VARIANT_NAME) and its table (DSV3_CPU_VARIANT_TABLE).
#include "kernels/cpu/amx_matmul.h"
#include "kernels/cpu/cpu_kernels.h"

extern "C" const dsv3::CpuKernels DSV3_CPU_VARIANT_TABLE = {
    DSV3_CPU_VARIANT_NAME,
    &dsv3::cpu_variant::matmul_rows,
    &dsv3::cpu_variant::matmul,
    &dsv3::cpu_variant::matmul_batch,
    &dsv3::cpu_variant::matmul_transposed,
    &dsv3::cpu_variant::measure_machine_limits,
    &dsv3::amx_usable,
};
