#include "formats/model_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace dsv3 {
namespace {

using nlohmann::json;

// The released DeepSeek-V3 config (architecture.md's table).
json v3_config() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 129280, "hidden_size": 7168, "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "n_routed_experts": 256, "num_experts_per_tok": 8, "n_shared_experts": 1,
    "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "norm_topk_prob": true, "first_k_dense_replace": 3, "moe_layer_freq": 1, "rms_norm_eps": 1e-06,
    "rope_theta": 10000, "max_position_embeddings": 163840, "bos_token_id": 0, "eos_token_id": 1,
    "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": "bfloat16", "attention_bias": false,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]}})");
}

// DeepSeek-V2-Lite's config.
json v2_lite_config() {
  return json::parse(R"({
    "vocab_size": 102400, "hidden_size": 2048, "num_hidden_layers": 27, "num_attention_heads": 16,
    "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 64, "num_experts_per_tok": 6,
    "n_shared_experts": 2, "n_group": 1, "topk_group": 1, "topk_method": "greedy", "scoring_func": "softmax",
    "norm_topk_prob": false, "routed_scaling_factor": 1.0, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "rms_norm_eps": 1e-06, "rope_theta": 10000, "max_position_embeddings": 163840, "bos_token_id": 100000,
    "eos_token_id": 100001, "tie_word_embeddings": false,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                     "original_max_position_embeddings": 4096, "type": "yarn"}})");
}

std::string write_config(const std::string& name, const json& j) {
  const auto path = std::filesystem::path(testing::TempDir()) / ("config_" + name + ".json");
  std::ofstream(path) << j.dump();
  return path.string();
}

TEST(ModelConfigTest, ParsesTheReleasedDeepSeekV3Config) {
  const ModelConfig c = read_model_config(write_config("v3", v3_config()));
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 40);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling->mscale_all_dim, 1.0);
  EXPECT_TRUE(c.fp8_weights);
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
}

TEST(ModelConfigTest, ParsesDeepSeekV2LiteStyleConfig) {
  const ModelConfig c = read_model_config(write_config("v2", v2_lite_config()));
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  EXPECT_EQ(c.topk_method, TopkMethod::Greedy);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_FALSE(c.has_mtp());
  EXPECT_FALSE(c.fp8_weights);
}

TEST(ModelConfigTest, WrittenConfigReadsBackTheSame) {
  const ModelConfig c = read_model_config(write_config("v3_again", v3_config()));
  const auto path = std::filesystem::path(testing::TempDir()) / "config_roundtrip.json";
  std::ofstream(path) << model_config_to_json(c);
  const ModelConfig d = read_model_config(path.string());
  EXPECT_EQ(model_config_to_json(d), model_config_to_json(c));
}

void expect_field_error(const std::string& name, const json& patch, const std::string& field) {
  json j = v3_config();
  j.merge_patch(patch);
  const std::string path = write_config(name, j);
  try {
    read_model_config(path);
    ADD_FAILURE() << "no error for " << name;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ModelConfigTest, InvalidFieldsAreNamed) {
  expect_field_error("missing", {{"hidden_size", nullptr}}, "hidden_size");
  expect_field_error("string_int", {{"num_attention_heads", "128"}}, "num_attention_heads");
  expect_field_error("groups", {{"n_group", 7}}, "n_group");
  expect_field_error("topk_group", {{"topk_group", 9}}, "topk_group");
  expect_field_error("topk_in_groups", {{"topk_group", 1}, {"num_experts_per_tok", 33}}, "num_experts_per_tok");
  expect_field_error("odd_rope", {{"qk_rope_head_dim", 63}}, "qk_rope_head_dim");
  expect_field_error("scoring", {{"scoring_func", "tanh"}}, "scoring_func");
  expect_field_error("method", {{"topk_method", "random"}}, "topk_method");
  expect_field_error("act", {{"hidden_act", "gelu"}}, "hidden_act");
  expect_field_error("linear_rope", {{"rope_scaling", {{"type", "linear"}}}}, "rope_scaling");
  expect_field_error("block64", {{"quantization_config", {{"weight_block_size", {64, 64}}}}}, "weight_block_size");
  expect_field_error("e5m2", {{"quantization_config", {{"fmt", "e5m2"}}}}, "fmt");
  expect_field_error("mtp2", {{"num_nextn_predict_layers", 2}}, "num_nextn_predict_layers");
  expect_field_error("negative", {{"kv_lora_rank", -1}}, "kv_lora_rank");
  expect_field_error("bias", {{"attention_bias", true}}, "attention_bias");
  const auto path = std::filesystem::path(testing::TempDir()) / "config_malformed.json";
  std::ofstream(path) << "{\"vocab_size\": 12,";
  EXPECT_THROW(read_model_config(path.string()), Error);
}

}  // namespace
}  // namespace dsv3
