// Matrix products on AMX tiles (Intel's matrix unit: 16x16 FP32 results from 16x32 BF16
// operands per instruction, products exact, sums in FP32), for MatmulInput::kBF16 passes of
// many tokens (prefill) with BF16, FP8 or Q8_0 weights. Each tile instruction does the work of
// 512 vector FMAs, so a prefill pass stops being bound by the vector units.
//
// Numerics: x is the BF16-rounded input that MatmulInput::kBF16 defines; BF16 weights enter
// as stored, FP8 codes and Q8_0 integers as their exact BF16 values, with the block scale
// applied when each block's sums are added into the FP32 results (as the FP8 recipe promotes).
// The instruction treats BF16 subnormal inputs as zero (|x| < 2^-126 only).
#pragma once

#include <cstdint>

#include "tensor/matrix.h"

namespace dsv3 {

inline constexpr int64_t kAmxRows = 16;    // weight rows per tile
inline constexpr int64_t kAmxTokens = 16;  // tokens per tile

// Whether this CPU and kernel let the process use AMX BF16 tiles (asked of the kernel once).
bool amx_usable();

// Whether amx_matmul_rows can compute products with W: BF16, FP8 or Q8_0 weights whose row
// length is a multiple of 32, on a CPU where amx_usable().
bool amx_handles(const Matrix& W);

// BF16 x ([T][cols] codes) rearranged into the tiles' operand layout: per 16-token group and
// 32-column step, 16 rows of 16 column pairs (one per token, zero past T).
int64_t amx_packed_words(int64_t T, int64_t cols);
void amx_pack_input(const uint16_t* x, int64_t T, int64_t cols, uint32_t* packed);

// y[t][r] = sum_c W[r][c] * x[t][c] for t < T and rows [row_begin, row_end), a multiple of
// kAmxRows apart; `packed` is amx_pack_input's x. y rows are y_stride floats apart.
void amx_matmul_rows(const Matrix& W, const uint32_t* packed, int64_t T, float* y, int64_t y_stride,
                     int64_t row_begin, int64_t row_end);

}  // namespace dsv3
