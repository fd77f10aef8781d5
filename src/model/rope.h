// Rotary frequencies of a model, with YaRN when config.rope_scaling asks for it.
// dsv3 follows the Hugging Face rule: YaRN applies whenever rope_scaling is present
// (the official inference code applies it only when the allocated context exceeds
// original_max_position_embeddings, which would make logits depend on the allocation).
#pragma once

#include <vector>

#include "model/config.h"

namespace dsv3 {

struct RopeParams {
  std::vector<float> inv_freq;  // [qk_rope_head_dim / 2]
  float magnitude = 1.0f;       // cos/sin scale: mscale(factor, mscale) / mscale(factor, mscale_all_dim)
  float softmax_scale = 1.0f;   // qk_head_dim^-0.5 * m^2, m = mscale(factor, mscale_all_dim)
};

RopeParams rope_params(const ModelConfig& config);

}  // namespace dsv3
