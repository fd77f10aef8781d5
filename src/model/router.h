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

// The gate weights of the chosen experts from the router logits: the unbiased scores
// (sigmoid, or softmax over all experts), divided by their sum if norm_topk_prob, times
// routed_scaling_factor. Differentiable in the logits once the choice is made.
template <typename T>
void gate_weights(const ModelConfig& config, const T* logits, const int32_t* experts, T* weights);

// Its backward: dlogits (n_routed_experts values, overwritten) from dweights. Experts not
// chosen get zero under sigmoid scoring; under softmax every logit moves every score.
template <typename T>
void gate_weights_backward(const ModelConfig& config, const T* logits, const int32_t* experts, const T* dweights,
                           T* dlogits);

}  // namespace dsv3
