#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/vec.h"

namespace dsv3 {

namespace {

using simd::hsum;
using simd::kLanes;
using simd::load;
using simd::vf;

constexpr int64_t kRowBlock = 4;     // weight rows decoded together
constexpr int64_t kTokenBlock = 4;   // tokens sharing each decoded row
constexpr int64_t kColBlock = 512;   // columns decoded at a time (a multiple of the FP8 block)

// Adds the dot products of kRows decoded weight rows (tile, kColBlock apart) with kTokens
// token rows of x over `len` columns into y[t][r].
template <int64_t kTokens, int64_t kRows>
void tile_block(const float* tile, const float* x, int64_t x_stride, int64_t len, float* y, int64_t y_stride) {
  const int64_t len_vec = len - len % kLanes;
  vf acc[kTokens][kRows] = {};
  for (int64_t c = 0; c < len_vec; c += kLanes) {
    vf w[kRows];
    for (int64_t r = 0; r < kRows; ++r) w[r] = load(tile + r * kColBlock + c);
    for (int64_t i = 0; i < kTokens; ++i) {
      const vf xv = load(x + i * x_stride + c);
      for (int64_t r = 0; r < kRows; ++r) acc[i][r] += w[r] * xv;
    }
  }
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) {
      float sum = hsum(acc[i][r]);
      for (int64_t c = len_vec; c < len; ++c) sum += tile[r * kColBlock + c] * x[i * x_stride + c];
      y[i * y_stride + r] += sum;
    }
}

// tile_block over T tokens and `rows` <= kRowBlock rows. Every (token, row) pair is summed
// in the same order whatever the blocking, so a token's result does not depend on how many
// tokens share the pass or where it sits among them: prefill, one-token decoding and the
// speculative verification pass give bitwise the same numbers.
void tile_product(const float* tile, int64_t rows, const float* x, int64_t x_stride, int64_t T, int64_t len,
                  float* y, int64_t y_stride) {
  if (rows == kRowBlock) {
    int64_t t = 0;
    for (; t + kTokenBlock <= T; t += kTokenBlock)
      tile_block<kTokenBlock, kRowBlock>(tile, x + t * x_stride, x_stride, len, y + t * y_stride, y_stride);
    for (; t < T; ++t) tile_block<1, kRowBlock>(tile, x + t * x_stride, x_stride, len, y + t * y_stride, y_stride);
    return;
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < rows; ++r)
      tile_block<1, 1>(tile + r * kColBlock, x + t * x_stride, x_stride, len, y + t * y_stride + r, y_stride);
}

}  // namespace

void matmul_rows(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t y_stride,
                 int64_t row_begin, int64_t row_end) {
  alignas(64) float tile[kRowBlock * kColBlock];
  for (int64_t t = 0; t < T; ++t) std::fill(y + t * y_stride + row_begin, y + t * y_stride + row_end, 0.0f);
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, row_end - r0);
    for (int64_t c0 = 0; c0 < W.cols; c0 += kColBlock) {
      const int64_t c1 = std::min(W.cols, c0 + kColBlock);
      for (int64_t r = 0; r < rows; ++r) W.decode_row(r0 + r, c0, c1, tile + r * kColBlock);
      tile_product(tile, rows, x + c0, x_stride, T, c1 - c0, y + r0, y_stride);
    }
  }
}

void matmul(const Matrix& W, const float* x, int64_t T, float* y, ThreadPool& pool) {
  // Enough tasks to balance the pool, each a whole number of row blocks.
  const int64_t blocks = (W.rows + kRowBlock - 1) / kRowBlock;
  if (blocks == 0) return;
  const int64_t tasks = std::min<int64_t>(blocks, static_cast<int64_t>(pool.size()) * 8);
  const int64_t blocks_per_task = (blocks + tasks - 1) / tasks;
  pool.parallel_for(static_cast<size_t>(tasks), [&](size_t i) {
    const int64_t r0 = static_cast<int64_t>(i) * blocks_per_task * kRowBlock;
    const int64_t r1 = std::min(W.rows, r0 + blocks_per_task * kRowBlock);
    if (r0 < r1) matmul_rows(W, x, W.cols, T, y, W.rows, r0, r1);
  });
}

void matmul_transposed(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y) {
  alignas(64) float row[kColBlock];
  std::fill(y, y + T * W.cols, 0.0f);
  for (int64_t c0 = 0; c0 < W.cols; c0 += kColBlock) {
    const int64_t c1 = std::min(W.cols, c0 + kColBlock);
    for (int64_t r = 0; r < W.rows; ++r) {
      W.decode_row(r, c0, c1, row);
      for (int64_t t = 0; t < T; ++t) simd::axpy(x[t * x_stride + r], row, y + t * W.cols + c0, c1 - c0);
    }
  }
}

}  // namespace dsv3
