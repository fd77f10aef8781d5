#include "model/config.h"

#include "base/error.h"

namespace dsv3 {

namespace {

void require_positive(int64_t value, const char* field) {
  if (value <= 0) fail("field ", field, " must be positive, got ", value);
}

}  // namespace

void ModelConfig::validate() const {
  require_positive(vocab_size, "vocab_size");
  require_positive(hidden_size, "hidden_size");
  require_positive(num_hidden_layers, "num_hidden_layers");
  require_positive(num_attention_heads, "num_attention_heads");
  require_positive(kv_lora_rank, "kv_lora_rank");
  require_positive(qk_nope_head_dim, "qk_nope_head_dim");
  require_positive(qk_rope_head_dim, "qk_rope_head_dim");
  require_positive(v_head_dim, "v_head_dim");
  if (q_lora_rank < 0) fail("field q_lora_rank must be null or positive, got ", q_lora_rank);
  if (qk_rope_head_dim % 2 != 0) fail("field qk_rope_head_dim must be even for rotary pairs, got ", qk_rope_head_dim);
  if (num_nextn_predict_layers < 0 || num_nextn_predict_layers > 1)
    fail("field num_nextn_predict_layers must be 0 or 1 (one MTP module is supported), got ", num_nextn_predict_layers);
  if (first_k_dense_replace < 0) fail("field first_k_dense_replace must be >= 0, got ", first_k_dense_replace);
  require_positive(moe_layer_freq, "moe_layer_freq");
  if (rms_norm_eps <= 0) fail("field rms_norm_eps must be positive, got ", rms_norm_eps);
  if (rope_theta <= 0) fail("field rope_theta must be positive, got ", rope_theta);
  if (bos_token_id >= vocab_size || eos_token_id >= vocab_size)
    fail("field bos_token_id/eos_token_id must be below vocab_size ", vocab_size);

  bool any_dense = false, any_moe = false;
  for (int64_t layer = 0; layer < num_hidden_layers; ++layer) (is_moe_layer(layer) ? any_moe : any_dense) = true;
  if (any_dense) require_positive(intermediate_size, "intermediate_size");
  if (any_moe || has_mtp()) {
    // The MTP block is an MoE block in DeepSeek-V3; a model without routed experts has none.
    if (has_mtp() && n_routed_experts <= 0) fail("field n_routed_experts must be positive when an MTP layer is present");
    require_positive(moe_intermediate_size, "moe_intermediate_size");
    require_positive(num_experts_per_tok, "num_experts_per_tok");
    if (n_shared_experts < 0) fail("field n_shared_experts must be >= 0, got ", n_shared_experts);
    if (num_experts_per_tok > n_routed_experts)
      fail("field num_experts_per_tok ", num_experts_per_tok, " exceeds n_routed_experts ", n_routed_experts);
    if (topk_method != TopkMethod::Greedy) {
      require_positive(n_group, "n_group");
      if (n_routed_experts % n_group != 0)
        fail("field n_routed_experts ", n_routed_experts, " is not divisible by n_group ", n_group);
      if (topk_group < 1 || topk_group > n_group)
        fail("field topk_group ", topk_group, " must be between 1 and n_group ", n_group);
      const int64_t group_size = n_routed_experts / n_group;
      if (num_experts_per_tok > topk_group * group_size)
        fail("field num_experts_per_tok ", num_experts_per_tok, " exceeds the ", topk_group * group_size,
             " experts in the topk_group kept groups");
      if (topk_method == TopkMethod::NoauxTc && group_size < 2 && n_group > 1)
        fail("field n_group ", n_group, " leaves fewer than 2 experts per group (noaux_tc scores a group by its top 2)");
    }
    if (routed_scaling_factor <= 0) fail("field routed_scaling_factor must be positive, got ", routed_scaling_factor);
  }
  if (rope_scaling) {
    if (rope_scaling->factor <= 0) fail("field rope_scaling.factor must be positive, got ", rope_scaling->factor);
    if (rope_scaling->original_max_position_embeddings <= 0)
      fail("field rope_scaling.original_max_position_embeddings must be positive");
    if (rope_scaling->beta_fast <= 0 || rope_scaling->beta_slow <= 0)
      fail("field rope_scaling.beta_fast/beta_slow must be positive");
  }
}

}  // namespace dsv3
