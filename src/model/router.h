// DeepSeekMoE routing for one token: which experts run and with what weight.
// (architecture.md, "DeepSeekMoE with auxiliary-loss-free routing").
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv3 {

// logits: the router's n_routed_experts outputs for the token; bias: the correction
// bias (noaux_tc only, else null); scratch: 3 * n_routed_experts floats.
// Writes num_experts_per_tok expert ids (best first) and their gate weights.
void route_token(const ModelConfig& config, const float* logits, const float* bias, float* scratch, int32_t* experts,
                 float* weights);

}  // namespace dsv3
