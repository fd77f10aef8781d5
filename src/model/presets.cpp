#include "model/presets.h"

#include "base/error.h"

namespace dsv3 {

namespace {

// Every preset keeps DeepSeek-V3's structure: q-LoRA, latent KV, dense first layer, MoE
// with sigmoid routing, correction bias, group-limited top-k, a shared expert and MTP.
ModelConfig base_config() {
  ModelConfig c;
  c.num_nextn_predict_layers = 1;
  c.first_k_dense_replace = 1;
  c.n_shared_experts = 1;
  c.n_group = 4;
  c.topk_group = 2;
  c.routed_scaling_factor = 2.5;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.topk_method = TopkMethod::NoauxTc;
  c.norm_topk_prob = true;
  return c;
}

}  // namespace

std::vector<std::string> preset_names() { return {"tiny", "small", "0.5b"}; }

ModelConfig preset_config(const std::string& name) {
  ModelConfig c = base_config();
  if (name == "tiny") {
    c.vocab_size = 512, c.hidden_size = 64, c.num_hidden_layers = 2, c.num_attention_heads = 4;
    c.q_lora_rank = 32, c.kv_lora_rank = 32, c.qk_nope_head_dim = 16, c.qk_rope_head_dim = 8, c.v_head_dim = 16;
    c.intermediate_size = 128, c.moe_intermediate_size = 32, c.n_routed_experts = 8, c.num_experts_per_tok = 2;
    c.max_position_embeddings = 1024;
  } else if (name == "small") {
    c.vocab_size = 8192, c.hidden_size = 256, c.num_hidden_layers = 4, c.num_attention_heads = 8;
    c.q_lora_rank = 128, c.kv_lora_rank = 64, c.qk_nope_head_dim = 32, c.qk_rope_head_dim = 16, c.v_head_dim = 32;
    c.intermediate_size = 768, c.moe_intermediate_size = 128, c.n_routed_experts = 16, c.num_experts_per_tok = 4;
    c.max_position_embeddings = 2048;
  } else if (name == "0.5b") {
    c.vocab_size = 32000, c.hidden_size = 1024, c.num_hidden_layers = 8, c.num_attention_heads = 16;
    c.q_lora_rank = 384, c.kv_lora_rank = 256, c.qk_nope_head_dim = 64, c.qk_rope_head_dim = 32, c.v_head_dim = 64;
    c.intermediate_size = 2816, c.moe_intermediate_size = 512, c.n_routed_experts = 32, c.num_experts_per_tok = 4;
    c.max_position_embeddings = 4096;
  } else {
    fail("unknown preset '", name, "' (tiny, small, 0.5b)");
  }
  c.validate();
  return c;
}

}  // namespace dsv3
