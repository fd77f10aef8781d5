// Non-owning views of weights in their stored dtype (usually straight from an mmap).
// A Matrix is row-major [rows, cols] like a PyTorch Linear weight: y = W x.
// FP8 matrices carry the 128x128 block scales of the DeepSeek-V3 release:
//   w[r][c] = e4m3(q[r][c]) * scale_inv[r / 128][c / 128]   (edge blocks partial).
// In the block formats (Q8_0, Q4_K, Q6_K) each row is cols / dtype_block_values whole
// blocks, which carry their own scales.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tensor/dtype.h"

namespace dsv3 {

inline constexpr int64_t kFp8BlockSize = 128;

// Whether a whole FP8 tensor is known to hold no NaN code (0x7F or 0xFF; real checkpoints
// hold none), found by one scan the first time a kernel asks and kept for every view of the
// tensor. The kernels' in-register decode would turn a NaN code into a number, so they use it
// only on tensors known clean, and otherwise Matrix::decode_row (the same bits for numbers).
// The scan waits for first use rather than running at load: experts that expert parallelism
// leaves to other ranks are never read, nor paged in.
class Fp8NanScan {
 public:
  Fp8NanScan(const uint8_t* codes, size_t count) : codes_(codes), count_(count) {}
  // Thread-safe: the first caller scans; threads asking meanwhile hear false rather than
  // wait or scan the tensor again (each thread of a product asks at its start).
  bool known_clean() const;

 private:
  enum : uint8_t { kNotScanned, kScanning, kClean, kHoldsNan };
  const uint8_t* codes_;
  size_t count_;
  mutable std::atomic<uint8_t> state_{kNotScanned};
};

struct Matrix {
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;            // rows rows of row_bytes() each
  const float* scale_inv = nullptr;      // FP8 only: [ceil(rows/128)][ceil(cols/128)]
  int64_t first_row = 0;                 // FP8 only: row of `data` in the full matrix, for scale lookup
  const Fp8NanScan* nan_scan = nullptr;  // FP8 only: of the whole tensor (none: decoded as if it held NaNs)

  bool empty() const { return data == nullptr; }
  int64_t scale_cols() const { return (cols + kFp8BlockSize - 1) / kFp8BlockSize; }
  size_t row_bytes() const { return dtype_row_bytes(dtype, cols); }
  // FP8 only: row r's block scales, one per 128 columns.
  const float* row_scales(int64_t r) const { return scale_inv + (first_row + r) / kFp8BlockSize * scale_cols(); }

  // Rows [begin, begin + count) as a matrix of their own (a head's slice of a projection).
  Matrix row_slice(int64_t begin, int64_t count) const {
    Matrix m = *this;
    m.rows = count;
    m.data = static_cast<const uint8_t*>(data) + static_cast<size_t>(begin) * row_bytes();
    m.first_row = first_row + begin;
    return m;
  }

  // Decodes columns [c0, c1) of row r to FP32.
  void decode_row(int64_t r, int64_t c0, int64_t c1, float* out) const;
};

// Decodes a whole 1-D or 2-D tensor of any dtype to FP32 (small tensors: norms, biases).
std::vector<float> decode_to_f32(const Matrix& m);

}  // namespace dsv3
