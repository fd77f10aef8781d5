// The tensors of a Hugging Face DeepSeek-V3 checkpoint (checkpoint.md): the one place that
// knows their names, shapes and storage roles. Loading binds them to ModelWeights, checking
// every shape against the config; writing a checkpoint enumerates the same list.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

enum class WeightRole {
  Projection,  // attention and feed-forward projections: FP8 in the official release
  Matrix,      // embeddings, heads, router, eh_proj: BF16 in the official release
  Norm,        // RMSNorm weights
  Bias,        // e_score_correction_bias: always F32
};

struct WeightSlot {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;  // 0 for 1-D tensors
  WeightRole role = WeightRole::Matrix;
  Matrix* matrix = nullptr;             // set for 2-D tensors
  std::vector<float>* vector = nullptr; // set for 1-D tensors
};

// Sizes `weights` for the config (layers, experts, MTP) and calls fn for every tensor of
// the checkpoint with a pointer to where it belongs in `weights`. The pointer is valid
// during the call only (`weights` keeps growing while it is visited).
void for_each_weight(const ModelConfig& config, ModelWeights& weights, const std::function<void(const WeightSlot&)>& fn);

// The returned views point into `checkpoint`, which must outlive them.
ModelWeights bind_weights(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace dsv3
