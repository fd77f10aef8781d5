// Block-scaled FP8 quantisation in the format of the DeepSeek-V3 release: one scale per
// 128x128 block, q = e4m3(w / s), s = amax(block) / 448, stored as scale_inv = s.
#pragma once

#include <cstdint>

namespace dsv3 {

// w: [rows][cols] FP32. q: [rows][cols] E4M3 codes. scale_inv: [ceil(rows/128)][ceil(cols/128)].
// A partial edge block's scale comes from its own elements (as if zero-padded); an all-zero
// block gets scale 1.
void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv);

}  // namespace dsv3
