// How activation rows travel between ranks: FP32 as computed, or the report's lighter
// payloads — BF16, or E4M3 codes with one FP32 scale per 1x128 tile (the dispatch of FP8
// training: the experts' projections quantise the same tiles again on arrival).
//   row layout: FP32 [cols floats] | BF16 [cols bf16] | FP8 [cols codes][ceil(cols/128) scales]
#pragma once

#include <cstdint>

namespace dsv3 {

enum class RowPayload { kF32, kBF16, kFP8 };

int64_t payload_row_bytes(RowPayload payload, int64_t cols);
void encode_rows(RowPayload payload, const float* x, int64_t rows, int64_t cols, uint8_t* out);
void decode_rows(RowPayload payload, const uint8_t* in, int64_t rows, int64_t cols, float* x);

}  // namespace dsv3
