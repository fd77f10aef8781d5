#include "formats/model_config.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "formats/json_file.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// Field readers: absent or null fields keep the default; a present field of the wrong type is an error.
bool present(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

void read_int(const json& j, const char* key, int64_t& out, bool required = false) {
  if (!present(j, key)) {
    if (required) fail("missing field ", key);
    return;
  }
  if (!j[key].is_number_integer()) fail("field ", key, " must be an integer, got ", j[key].dump());
  out = j[key].get<int64_t>();
}

void read_double(const json& j, const char* key, double& out) {
  if (!present(j, key)) return;
  if (!j[key].is_number()) fail("field ", key, " must be a number, got ", j[key].dump());
  out = j[key].get<double>();
}

void read_bool(const json& j, const char* key, bool& out) {
  if (!present(j, key)) return;
  if (!j[key].is_boolean()) fail("field ", key, " must be true or false, got ", j[key].dump());
  out = j[key].get<bool>();
}

std::string read_string(const json& j, const char* key, const std::string& fallback) {
  if (!present(j, key)) return fallback;
  if (!j[key].is_string()) fail("field ", key, " must be a string, got ", j[key].dump());
  return j[key].get<std::string>();
}

YarnScaling read_yarn(const json& r) {
  if (!r.is_object()) fail("field rope_scaling must be an object or null");
  const std::string type = read_string(r, "type", read_string(r, "rope_type", ""));
  if (type != "yarn") fail("field rope_scaling.type '", type, "' is not supported (only yarn)");
  YarnScaling y;
  read_double(r, "factor", y.factor);
  read_int(r, "original_max_position_embeddings", y.original_max_position_embeddings);
  read_double(r, "beta_fast", y.beta_fast);
  read_double(r, "beta_slow", y.beta_slow);
  read_double(r, "mscale", y.mscale);
  read_double(r, "mscale_all_dim", y.mscale_all_dim);
  return y;
}

bool read_fp8_quantization(const json& q) {
  if (!q.is_object()) fail("field quantization_config must be an object");
  const std::string method = read_string(q, "quant_method", "");
  if (method != "fp8") fail("field quantization_config.quant_method '", method, "' is not supported (only fp8)");
  const std::string fmt = read_string(q, "fmt", "e4m3");
  if (fmt != "e4m3") fail("field quantization_config.fmt '", fmt, "' is not supported (only e4m3)");
  if (present(q, "weight_block_size") && q["weight_block_size"] != json::array({128, 128}))
    fail("field quantization_config.weight_block_size must be [128, 128], got ", q["weight_block_size"].dump());
  return true;
}

ModelConfig parse(const json& j) {
  if (!j.is_object()) fail("config is not a JSON object");
  ModelConfig c;
  read_int(j, "vocab_size", c.vocab_size, true);
  read_int(j, "hidden_size", c.hidden_size, true);
  read_int(j, "num_hidden_layers", c.num_hidden_layers, true);
  read_int(j, "num_attention_heads", c.num_attention_heads, true);
  read_int(j, "kv_lora_rank", c.kv_lora_rank, true);
  read_int(j, "qk_nope_head_dim", c.qk_nope_head_dim, true);
  read_int(j, "qk_rope_head_dim", c.qk_rope_head_dim, true);
  read_int(j, "v_head_dim", c.v_head_dim, true);
  read_int(j, "num_nextn_predict_layers", c.num_nextn_predict_layers);
  read_int(j, "q_lora_rank", c.q_lora_rank);
  read_int(j, "intermediate_size", c.intermediate_size);
  read_int(j, "moe_intermediate_size", c.moe_intermediate_size);
  read_int(j, "n_routed_experts", c.n_routed_experts);
  read_int(j, "num_experts_per_tok", c.num_experts_per_tok);
  read_int(j, "n_shared_experts", c.n_shared_experts);
  read_int(j, "n_group", c.n_group);
  read_int(j, "topk_group", c.topk_group);
  read_double(j, "routed_scaling_factor", c.routed_scaling_factor);
  read_int(j, "first_k_dense_replace", c.first_k_dense_replace);
  read_int(j, "moe_layer_freq", c.moe_layer_freq);
  read_double(j, "rms_norm_eps", c.rms_norm_eps);
  read_double(j, "rope_theta", c.rope_theta);
  read_int(j, "max_position_embeddings", c.max_position_embeddings);
  read_int(j, "bos_token_id", c.bos_token_id);
  read_int(j, "eos_token_id", c.eos_token_id);
  read_bool(j, "tie_word_embeddings", c.tie_word_embeddings);

  const std::string scoring = read_string(j, "scoring_func", "softmax");
  if (scoring == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
  else if (scoring == "softmax") c.scoring_func = ScoringFunc::Softmax;
  else fail("field scoring_func '", scoring, "' is not supported (sigmoid or softmax)");

  // Defaults follow the model generation: V3 (sigmoid) routes with noaux_tc and
  // normalised weights, V2 (softmax) greedily without normalisation.
  const bool v3_style = c.scoring_func == ScoringFunc::Sigmoid;
  const std::string method = read_string(j, "topk_method", v3_style ? "noaux_tc" : "greedy");
  if (method == "noaux_tc") c.topk_method = TopkMethod::NoauxTc;
  else if (method == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
  else if (method == "greedy") c.topk_method = TopkMethod::Greedy;
  else fail("field topk_method '", method, "' is not supported (noaux_tc, group_limited_greedy, greedy)");
  c.norm_topk_prob = v3_style;
  read_bool(j, "norm_topk_prob", c.norm_topk_prob);

  bool attention_bias = false;
  read_bool(j, "attention_bias", attention_bias);
  if (attention_bias) fail("field attention_bias true is not supported (DeepSeek attention has no biases)");
  const std::string act = read_string(j, "hidden_act", "silu");
  if (act != "silu") fail("field hidden_act '", act, "' is not supported (only silu)");
  if (present(j, "rope_scaling")) c.rope_scaling = read_yarn(j["rope_scaling"]);
  if (present(j, "quantization_config")) c.fp8_weights = read_fp8_quantization(j["quantization_config"]);
  c.validate();
  return c;
}

}  // namespace

ModelConfig read_model_config(const std::string& path) {
  const json j = read_json_file(path);
  try {
    return parse(j);
  } catch (const Error& e) {
    fail(e.what(), " (", path, ")");
  }
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = {
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"model_type", "deepseek_v3"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_nextn_predict_layers", c.num_nextn_predict_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_attention_heads},
      {"q_lora_rank", c.q_lora_rank > 0 ? json(c.q_lora_rank) : json(nullptr)},
      {"kv_lora_rank", c.kv_lora_rank},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"intermediate_size", c.intermediate_size},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"n_routed_experts", c.n_routed_experts},
      {"num_experts_per_tok", c.num_experts_per_tok},
      {"n_shared_experts", c.n_shared_experts},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
      {"routed_scaling_factor", c.routed_scaling_factor},
      {"scoring_func", c.scoring_func == ScoringFunc::Sigmoid ? "sigmoid" : "softmax"},
      {"topk_method", c.topk_method == TopkMethod::NoauxTc              ? "noaux_tc"
                      : c.topk_method == TopkMethod::GroupLimitedGreedy ? "group_limited_greedy"
                                                                        : "greedy"},
      {"norm_topk_prob", c.norm_topk_prob},
      {"first_k_dense_replace", c.first_k_dense_replace},
      {"moe_layer_freq", c.moe_layer_freq},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"max_position_embeddings", c.max_position_embeddings},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", "bfloat16"},
      {"rope_scaling", nullptr},
  };
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position_embeddings},
                         {"beta_fast", y.beta_fast},
                         {"beta_slow", y.beta_slow},
                         {"mscale", y.mscale},
                         {"mscale_all_dim", y.mscale_all_dim}};
  }
  if (c.fp8_weights)
    j["quantization_config"] = {
        {"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
  return j.dump(2) + "\n";
}

}  // namespace dsv3
