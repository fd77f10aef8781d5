#include "formats/gguf_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "base/error.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return (fs::path(testing::TempDir()) / ("gguf_model_" + name + ".gguf")).string(); }

// A tiny model in GGUF with deterministic weights; the MTP module's embedding, head and
// head norm hold the main model's values, as in released checkpoints.
std::string tiny_gguf(const std::string& name, DType dtype) {
  const std::string path = temp_path(name);
  fs::remove(path);
  const std::string no_tokenizer = (fs::path(testing::TempDir()) / "gguf_model_test_no_tokenizer").string();
  write_gguf_model(path, preset_config("tiny"), dtype, "tiny", no_tokenizer, [](const WeightSlot& slot, float* v) {
    auto ends_with = [&](const std::string& suffix) {
      return slot.name.size() >= suffix.size() && slot.name.compare(slot.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const std::string key = ends_with("embed_tokens.weight") ? "embed"
                            : ends_with("head.weight")       ? "head"
                            : ends_with("model.norm.weight") || ends_with("shared_head.norm.weight") ? "norm"
                                                                                                     : slot.name;
    const size_t seed = std::hash<std::string>()(key);
    for (int64_t i = 0; i < slot.rows * std::max<int64_t>(slot.cols, 1); ++i)
      v[i] = float(int64_t((seed + 7919 * size_t(i)) % 2001) - 1000) / 8000.0f;
  });
  return path;
}

// A copy of a GGUF file with its metadata and tensor list edited.
std::string rewrite(const std::string& from, const std::string& name,
                    const std::function<void(std::vector<std::pair<std::string, GgufValue>>&)>& edit_metadata,
                    const std::function<void(std::vector<GgufTensorToWrite>&)>& edit_tensors) {
  GgufFile in(from);
  auto metadata = in.metadata();
  std::vector<GgufTensorToWrite> tensors;
  for (const GgufTensor& t : in.tensors()) tensors.push_back({t.name, t.dtype, t.ne, t.data});
  edit_metadata(metadata);
  edit_tensors(tensors);
  const std::string path = temp_path(name);
  write_gguf(path, metadata, tensors);
  return path;
}

std::vector<float> values(const Matrix& m) { return decode_to_f32(m); }

TEST(GgufModelTest, LegacyKvBAndLeftOutMtpCopiesLoadAsTheSplitFile) {
  const std::string split = tiny_gguf("split", DType::BF16);
  GgufModel a(split);
  ModelWeights wa = a.bind_weights();
  const ModelConfig& c = a.config();
  // Older files: kv_b whole, as the checkpoint has it; llama.cpp also loads files without
  // the MTP module's own embedding, head and head norm.
  std::vector<std::vector<uint8_t>> kv_b;
  const std::string legacy = rewrite(split, "legacy", [](auto&) {}, [&](std::vector<GgufTensorToWrite>& tensors) {
    std::vector<GgufTensorToWrite> kept;
    for (const GgufTensorToWrite& t : tensors) {
      if (t.name.find("nextn.embed_tokens") != std::string::npos || t.name.find("nextn.shared_head") != std::string::npos)
        continue;
      if (t.name.find("attn_v_b") != std::string::npos) continue;
      if (t.name.find("attn_k_b") == std::string::npos) {
        kept.push_back(t);
        continue;
      }
      const int64_t layer = std::stoll(t.name.substr(4));
      const Matrix& joined = layer < c.num_hidden_layers ? wa.layers[layer].attn.kv_b : wa.mtp->block.attn.kv_b;
      const auto* p = static_cast<const uint8_t*>(joined.data);
      kv_b.emplace_back(p, p + joined.rows * joined.row_bytes());
      kept.push_back({"blk." + std::to_string(layer) + ".attn_kv_b.weight", joined.dtype, {joined.cols, joined.rows},
                      kv_b.back().data()});
    }
    tensors = kept;
  });
  GgufModel b(legacy);
  ModelWeights wb = b.bind_weights();
  ASSERT_TRUE(wa.mtp && wb.mtp);
  EXPECT_EQ(wa.layers[0].attn.kv_b.dtype, DType::BF16);  // BF16 k_b and v_b join without decoding
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    EXPECT_EQ(values(wa.layers[l].attn.kv_b), values(wb.layers[l].attn.kv_b)) << l;
    EXPECT_EQ(values(wa.layers[l].attn.q_b), values(wb.layers[l].attn.q_b)) << l;
  }
  EXPECT_EQ(values(wa.mtp->block.attn.kv_b), values(wb.mtp->block.attn.kv_b));
  EXPECT_EQ(values(wa.mtp->embed), values(wb.mtp->embed));
  EXPECT_EQ(values(wa.mtp->head), values(wb.mtp->head));
  EXPECT_EQ(wa.mtp->head_norm, wb.mtp->head_norm);
  EXPECT_EQ(wb.mtp->embed.data, wb.embed.data);  // the main model's tensor, not a copy
}

TEST(GgufModelTest, ExpertsAreRowRangesOfTheStackedTensor) {
  const std::string path = tiny_gguf("experts", DType::Q8_0);
  GgufModel m(path);
  ModelWeights w = m.bind_weights();
  const GgufTensor& up = m.file().tensor("blk.1.ffn_up_exps.weight");
  const auto& experts = w.layers[1].moe.experts;
  ASSERT_EQ(int64_t(experts.size()), m.config().n_routed_experts);
  for (size_t e = 0; e < experts.size(); ++e) {
    EXPECT_EQ(experts[e].up.dtype, DType::Q8_0);
    EXPECT_EQ(experts[e].up.data, up.data + e * up.nbytes / experts.size());
  }
  // Q8_0 k_b rows of 16 values fall back to F16 as llama.cpp's converter does; kv_b is then
  // joined from F16 and Q8_0 halves into F32.
  EXPECT_EQ(m.file().tensor("blk.0.attn_k_b.weight").dtype, DType::F16);
  EXPECT_EQ(w.layers[0].attn.kv_b.dtype, DType::F32);
  EXPECT_EQ(m.file().tensor("blk.1.ffn_gate_inp.weight").dtype, DType::F32);
}

void expect_error(const std::string& path, const std::vector<std::string>& fragments) {
  try {
    GgufModel m(path);
    m.bind_weights();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    for (const std::string& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(GgufModelTest, MismatchesNameTheFileAndTheKeyOrTensor) {
  const std::string good = tiny_gguf("good", DType::BF16);
  auto set = [](const std::string& key, GgufValue value) {
    return [=](std::vector<std::pair<std::string, GgufValue>>& metadata) {
      for (auto& [k, v] : metadata)
        if (k == key) v = value;
    };
  };
  auto keep = [](std::vector<GgufTensorToWrite>&) {};
  expect_error(rewrite(good, "llama", set("general.architecture", GgufValue::str("llama")), keep), {"'llama'"});
  expect_error(rewrite(good, "wide", set("deepseek2.embedding_length", GgufValue::u32(128)), keep),
               {"token_embd.weight", "[64, 512]", "[128, 512]"});
  expect_error(rewrite(good, "heads_f32", set("deepseek2.attention.head_count", GgufValue::f32(4)), keep),
               {"deepseek2.attention.head_count", "integer"});
  expect_error(rewrite(good, "gating", set("deepseek2.expert_gating_func", GgufValue::u32(9)), keep),
               {"expert_gating_func"});
  expect_error(rewrite(good, "no_q_a", [](auto&) {}, [](std::vector<GgufTensorToWrite>& t) {
                 std::erase_if(t, [](const GgufTensorToWrite& x) { return x.name == "blk.0.attn_q_a.weight"; });
               }),
               {"missing tensor", "blk.0.attn_q_a.weight"});
  expect_error(rewrite(good, "no_layers", [](auto& m) { std::erase_if(m, [](auto& kv) { return kv.first == "deepseek2.block_count"; }); },
                       keep),
               {"deepseek2.block_count"});
}

}  // namespace
}  // namespace dsv3
