// What one decoded token costs the main model: the weight bytes it reads (every matrix
// once, the routed experts num_experts_per_tok of n_routed_experts, one embedding row)
// and the FLOPs of its matrix products (2 per weight multiplied). The KV cache and the
// attention core are left out: at short contexts they are a small part. These make the
// floors `dsv3 bench --roofline` compares against: decode <= bandwidth / bytes, prefill
// <= FMA peak / FLOPs.
#pragma once

#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

struct TokenCost {
  double weight_bytes = 0;
  double flops = 0;
};

TokenCost token_cost(const ModelConfig& config, const ModelWeights& weights);

}  // namespace dsv3
