// Block-scaled FP8 (E4M3) quantisation as in DeepSeek-V3: one FP32 scale per group of
// rows_per_scale rows x 128 columns, scale = amax(group) / 448, q = e4m3(x / scale) with the
// quotient rounded to FP32. The release stores weights in 128x128 blocks (the scale is
// `weight_scale_inv`); FP8 training quantises activations in 1x128 tiles.
#pragma once

#include <cstdint>
#include <vector>

#include "base/thread_pool.h"

namespace dsv3 {

// x: [rows][cols] FP32. q: [rows][cols] E4M3 codes. scales: [ceil(rows/rows_per_scale)][ceil(cols/128)].
// A partial edge group's scale comes from its own elements (as if zero-padded); an
// all-zero group gets scale 1; scales below FP32's smallest normal number are raised to it.
void quantize_fp8(const float* x, int64_t rows, int64_t cols, int64_t rows_per_scale, uint8_t* q, float* scales);

// The release's 128x128 weight blocks.
inline void quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scale_inv) {
  quantize_fp8(w, rows, cols, 128, q, scale_inv);
}

// A quantised [rows][cols] tensor with its storage.
struct Fp8Tensor {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  int64_t rows = 0, cols = 0, rows_per_scale = 1;

  // With a pool, the groups of rows are split over it (a group's scales and codes depend on
  // its own values only, so the result is the same).
  void quantize(const float* x, int64_t n_rows, int64_t n_cols, int64_t group_rows, ThreadPool* pool = nullptr);
  // e4m3(code) * scale, [rows][cols].
  std::vector<float> dequantize() const;
};

}  // namespace dsv3
