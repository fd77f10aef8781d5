// Every weight of a DeepSeek-V3 model, grouped the way the forward pass uses them.
//
// The structure is written once as templates over the matrix and vector types:
// - inference (ModelWeights): Matrix views into the mapped checkpoint in their stored dtype,
//   with only the small 1-D tensors (norm weights, routing bias) decoded to FP32 copies;
// - training (train/parameters.h): dense views into one FP32 (or double) parameter buffer.
#pragma once

#include <optional>
#include <vector>

#include "tensor/matrix.h"

namespace dsv3 {

template <typename M, typename V>
struct BasicAttentionWeights {
  M q_a, q_b;      // q-LoRA: q = q_b(RMSNorm(q_a x)); empty when q_lora_rank is 0
  M q;             // the single query projection when q_lora_rank is 0
  V q_a_norm;
  M kv_a;          // [kv_lora_rank + rope, d]: latent then the shared rope key
  V kv_a_norm;
  M kv_b;          // [heads * (nope + v), kv_lora_rank], per head: key half then value half
  // GGUF files with kv_b block-quantised hold it split, in the layout llama.cpp computes with;
  // bound as they are, the two replace kv_b (then empty). Not part of training's parameters.
  M k_b;           // [heads * kv_lora_rank, nope], per head: the key half transposed
  M v_b;           // [heads * v, kv_lora_rank], per head: the value half
  M o;             // [d, heads * v]
};

template <typename M, typename V>
struct BasicSwiGluWeights {
  M gate, up, down;
  bool empty() const { return gate.empty(); }
};

template <typename M, typename V>
struct BasicMoeWeights {
  M router;                                        // [n_routed, d]
  V correction_bias;                               // [n_routed]; empty unless topk_method is noaux_tc
  std::vector<BasicSwiGluWeights<M, V>> experts;
  BasicSwiGluWeights<M, V> shared;                 // empty when n_shared_experts is 0
};

template <typename M, typename V>
struct BasicLayerWeights {
  V attn_norm, ffn_norm;
  BasicAttentionWeights<M, V> attn;
  bool is_moe = false;
  BasicSwiGluWeights<M, V> dense;  // when !is_moe
  BasicMoeWeights<M, V> moe;       // when is_moe
};

template <typename M, typename V>
struct BasicMtpWeights {
  M embed;         // its own copy of the token embedding (shared with the main model in training)
  V enorm, hnorm;
  M eh_proj;       // [d, 2d]: input is concat(enorm(embedding), hnorm(hidden))
  BasicLayerWeights<M, V> block;
  V head_norm;
  M head;          // its own copy of the output head (shared with the main model in training)
};

template <typename M, typename V>
struct BasicModelWeights {
  using MatrixType = M;
  using VectorType = V;
  M embed;         // [vocab, d]
  std::vector<BasicLayerWeights<M, V>> layers;
  V final_norm;
  M head;          // [vocab, d]
  std::optional<BasicMtpWeights<M, V>> mtp;
};

using AttentionWeights = BasicAttentionWeights<Matrix, std::vector<float>>;
using SwiGluWeights = BasicSwiGluWeights<Matrix, std::vector<float>>;
using MoeWeights = BasicMoeWeights<Matrix, std::vector<float>>;
using LayerWeights = BasicLayerWeights<Matrix, std::vector<float>>;
using MtpWeights = BasicMtpWeights<Matrix, std::vector<float>>;
using ModelWeights = BasicModelWeights<Matrix, std::vector<float>>;

}  // namespace dsv3
