// Writes a model directory in the Hugging Face layout (config.json + model.safetensors).
#pragma once

#include <functional>
#include <string>

#include "formats/hf_weights.h"
#include "model/config.h"

namespace dsv3 {

// `fill` supplies each tensor's FP32 values (rows * max(cols, 1) floats). With dtype
// F8_E4M3 the projections are stored as FP8 with block scales and the rest in BF16, as
// in the official release; otherwise every tensor but the F32 routing bias is stored in
// dtype. Files are written atomically; the directory is created if needed.
void write_checkpoint(const std::string& dir, ModelConfig config, DType dtype,
                      const std::function<void(const WeightSlot&, float*)>& fill);

}  // namespace dsv3
