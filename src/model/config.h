// The hyper-parameters of a DeepSeek-V3-architecture model (config.json's fields, see
// ../shared/spec/architecture.md). Plain data; parsing lives in formats/, checks here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dsv3 {

enum class ScoringFunc { Sigmoid, Softmax };
// noaux_tc: DeepSeek-V3 (bias for selection, group score = sum of top-2);
// group_limited_greedy: DeepSeek-V2 (group score = max); greedy: no groups.
enum class TopkMethod { NoauxTc, GroupLimitedGreedy, Greedy };

struct YarnScaling {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t q_lora_rank = 0;  // 0: config says null, a single q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t moe_intermediate_size = 0;
  int64_t n_routed_experts = 0;  // 0: no MoE layers
  int64_t num_experts_per_tok = 0;
  int64_t n_shared_experts = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  ScoringFunc scoring_func = ScoringFunc::Sigmoid;
  TopkMethod topk_method = TopkMethod::NoauxTc;
  bool norm_topk_prob = true;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<YarnScaling> rope_scaling;
  int64_t max_position_embeddings = 4096;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  bool tie_word_embeddings = false;
  bool fp8_weights = false;  // quantization_config: fp8 e4m3 with 128x128 blocks

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  bool has_mtp() const { return num_nextn_predict_layers > 0; }

  // Throws Error naming the first inconsistent field.
  void validate() const;
};

}  // namespace dsv3
