#include "dist/row_payload.h"

#include <cstring>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/fp8_blocks.h"
#include "tensor/matrix.h"

namespace dsv3 {

namespace {

int64_t tiles(int64_t cols) { return (cols + kFp8BlockSize - 1) / kFp8BlockSize; }

}  // namespace

int64_t payload_row_bytes(RowPayload payload, int64_t cols) {
  switch (payload) {
    case RowPayload::kF32: return cols * 4;
    case RowPayload::kBF16: return cols * 2;
    case RowPayload::kFP8: return cols + tiles(cols) * 4;
  }
  return 0;
}

void encode_rows(RowPayload payload, const float* x, int64_t rows, int64_t cols, uint8_t* out) {
  const int64_t row_bytes = payload_row_bytes(payload, cols);
  std::vector<float> scales(static_cast<size_t>(tiles(cols)));
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    uint8_t* row = out + r * row_bytes;
    if (payload == RowPayload::kF32) {
      std::memcpy(row, in, static_cast<size_t>(row_bytes));
    } else if (payload == RowPayload::kBF16) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint16_t h = f32_to_bf16(in[c]);
        std::memcpy(row + 2 * c, &h, 2);
      }
    } else {
      quantize_fp8(in, 1, cols, 1, row, scales.data());
      std::memcpy(row + cols, scales.data(), scales.size() * sizeof(float));
    }
  }
}

void decode_rows(RowPayload payload, const uint8_t* in, int64_t rows, int64_t cols, float* x) {
  const int64_t row_bytes = payload_row_bytes(payload, cols);
  std::vector<float> scales(static_cast<size_t>(tiles(cols)));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = in + r * row_bytes;
    float* out = x + r * cols;
    if (payload == RowPayload::kF32) {
      std::memcpy(out, row, static_cast<size_t>(row_bytes));
    } else if (payload == RowPayload::kBF16) {
      for (int64_t c = 0; c < cols; ++c) {
        uint16_t h;
        std::memcpy(&h, row + 2 * c, 2);
        out[c] = bf16_to_f32(h);
      }
    } else {
      std::memcpy(scales.data(), row + cols, scales.size() * sizeof(float));
      for (int64_t c = 0; c < cols; ++c) out[c] = e4m3_to_f32(row[c]) * scales[c / kFp8BlockSize];
    }
  }
}

}  // namespace dsv3
