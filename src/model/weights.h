// Views of every weight of a DeepSeek-V3 model, grouped the way the forward pass uses them.
// Matrices point into the mapped checkpoint in their stored dtype; only the small 1-D
// tensors (norm weights, routing bias) are decoded to FP32 copies.
#pragma once

#include <optional>
#include <vector>

#include "tensor/matrix.h"

namespace dsv3 {

struct AttentionWeights {
  Matrix q_a, q_b;          // q-LoRA: q = q_b(RMSNorm(q_a x)); empty when q_lora_rank is 0
  Matrix q;                 // the single query projection when q_lora_rank is 0
  std::vector<float> q_a_norm;
  Matrix kv_a;              // [kv_lora_rank + rope, d]: latent then the shared rope key
  std::vector<float> kv_a_norm;
  Matrix kv_b;              // [heads * (nope + v), kv_lora_rank], per head: key half then value half
  Matrix o;                 // [d, heads * v]
};

struct SwiGluWeights {
  Matrix gate, up, down;
  bool empty() const { return gate.empty(); }
};

struct MoeWeights {
  Matrix router;                        // [n_routed, d]
  std::vector<float> correction_bias;   // [n_routed]; empty unless topk_method is noaux_tc
  std::vector<SwiGluWeights> experts;
  SwiGluWeights shared;                 // empty when n_shared_experts is 0
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  AttentionWeights attn;
  bool is_moe = false;
  SwiGluWeights dense;  // when !is_moe
  MoeWeights moe;       // when is_moe
};

struct MtpWeights {
  Matrix embed;             // its own copy of the token embedding
  std::vector<float> enorm, hnorm;
  Matrix eh_proj;           // [d, 2d]: input is concat(enorm(embedding), hnorm(hidden))
  LayerWeights block;
  std::vector<float> head_norm;
  Matrix head;
};

struct ModelWeights {
  Matrix embed;             // [vocab, d]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;
  Matrix head;              // [vocab, d]
  std::optional<MtpWeights> mtp;
};

}  // namespace dsv3
