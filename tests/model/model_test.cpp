#include "model/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "base/error.h"
#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "model/presets.h"
#include "model/token_cost.h"

namespace dsv3 {
namespace {

// A tiny model with random weights, random norms and a random routing bias, so every
// part of the forward pass (and the cache) matters.
std::string write_tiny_model(const std::string& name, DType dtype, ModelConfig config) {
  const std::string dir = (std::filesystem::path(testing::TempDir()) / name).string();
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  write_checkpoint(dir, config, dtype, [&](const WeightSlot& slot, float* values) {
    const int64_t n = slot.rows * std::max<int64_t>(slot.cols, 1);
    for (int64_t i = 0; i < n; ++i) {
      const float z = normal(rng);
      values[i] = slot.role == WeightRole::Norm ? 1.0f + 0.1f * z : slot.role == WeightRole::Bias ? 0.05f * z : 0.1f * z;
    }
  });
  return dir;
}

struct Outputs {
  std::vector<float> logits, mtp_logits;
};

// Runs ids through the main model and the MTP module in passes of `chunk` tokens (0: one
// pass over everything).
Outputs run(Model& model, const std::vector<int32_t>& ids, int64_t chunk = 0) {
  const ModelConfig& c = model.config();
  const int64_t T = static_cast<int64_t>(ids.size()), d = c.hidden_size, V = c.vocab_size;
  if (chunk == 0) chunk = T;
  Outputs out{std::vector<float>(T * V), std::vector<float>((T - 1) * V)};
  std::vector<float> hidden(T * d);
  KvCache cache = model.make_cache(T), mtp_cache = model.make_mtp_cache(T);
  for (int64_t t = 0; t < T; t += chunk) {
    const int64_t n = std::min(chunk, T - t);
    model.forward(&ids[t], n, cache, &hidden[t * d], &out.logits[t * V]);
  }
  for (int64_t t = 0; t + 1 < T; t += chunk) {
    const int64_t n = std::min(chunk, T - 1 - t);
    model.forward_mtp(&ids[t + 1], &hidden[t * d], n, mtp_cache, &out.mtp_logits[t * V]);
  }
  return out;
}

const std::vector<int32_t> kIds = {0, 17, 300, 5, 5, 511, 42, 1, 99, 250, 3, 128};

class ModelTest : public ::testing::TestWithParam<DType> {};

// A token's results do not depend on how many tokens share its pass: prefill, one-token
// decoding and passes of a few tokens (speculative verification) agree bit for bit,
// which is what makes greedy speculative decoding give exactly the plain tokens.
TEST_P(ModelTest, PrefillAndIncrementalDecodingAgreeBitForBit) {
  const std::string dir = write_tiny_model("prefill_" + std::string(dtype_name(GetParam())), GetParam(),
                                           preset_config("tiny"));
  ThreadPool pool(2);
  LoadedModel loaded = load_model(dir, pool);
  const Outputs prefill = run(*loaded.model, kIds);
  for (int64_t chunk : {1, 2, 3, 5}) {
    const Outputs chunked = run(*loaded.model, kIds, chunk);
    EXPECT_EQ(chunked.logits, prefill.logits) << "passes of " << chunk;
    EXPECT_EQ(chunked.mtp_logits, prefill.mtp_logits) << "passes of " << chunk;
  }
}

TEST(ModelLogitRowsTest, OnlyTheLastLogitRowsAreComputedWhenAsked) {
  const std::string dir = write_tiny_model("logit_rows", DType::BF16, preset_config("tiny"));
  ThreadPool pool(1);
  LoadedModel loaded = load_model(dir, pool);
  Model& model = *loaded.model;
  const int64_t T = static_cast<int64_t>(kIds.size()), V = model.config().vocab_size;
  const Outputs all = run(model, kIds);
  KvCache cache = model.make_cache(T);
  std::vector<float> last(2 * V, NAN);
  model.forward(kIds.data(), T, cache, nullptr, last.data(), 2);
  EXPECT_EQ(last, std::vector<float>(all.logits.end() - 2 * V, all.logits.end()));
}

TEST_P(ModelTest, ResultsDoNotDependOnThreadCount) {
  const std::string dir = write_tiny_model("threads_" + std::string(dtype_name(GetParam())), GetParam(),
                                           preset_config("tiny"));
  ThreadPool one(1), three(3);
  LoadedModel a = load_model(dir, one), b = load_model(dir, three);
  const Outputs x = run(*a.model, kIds), y = run(*b.model, kIds);
  EXPECT_EQ(x.logits, y.logits);
  EXPECT_EQ(x.mtp_logits, y.mtp_logits);
}

// Continuous batching: sequences at different positions, each with its own cache, share
// one pass; every row equals the sequence's own single-sequence results bit for bit.
TEST_P(ModelTest, BatchedSequencesGiveTheirOwnResults) {
  const std::string dir = write_tiny_model("batch_" + std::string(dtype_name(GetParam())), GetParam(),
                                           preset_config("tiny"));
  ThreadPool pool(2);
  LoadedModel loaded = load_model(dir, pool);
  Model& model = *loaded.model;
  const int64_t d = model.config().hidden_size, V = model.config().vocab_size;
  const std::vector<std::vector<int32_t>> sequences = {
      kIds, {7, 8, 9, 10, 11}, {400, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}};
  const std::vector<int64_t> cached = {4, 0, 1, 13};      // tokens run before the batched pass
  const std::vector<int64_t> logit_rows = {-1, 1, -1, 1};  // -1: all rows
  std::vector<KvCache> caches, mtp_caches;
  std::vector<std::vector<float>> hidden;  // per sequence, [tokens][d]
  std::vector<SequenceSlice> slices, mtp_slices;
  for (size_t k = 0; k < sequences.size(); ++k) {
    const int64_t T = static_cast<int64_t>(sequences[k].size()), p = cached[k];
    caches.push_back(model.make_cache(T));
    mtp_caches.push_back(model.make_mtp_cache(T));
    hidden.emplace_back(T * d);
    if (p > 0) model.forward(sequences[k].data(), p, caches[k], hidden[k].data(), nullptr);
    if (p > 1) model.forward_mtp(sequences[k].data() + 1, hidden[k].data(), p - 1, mtp_caches[k], nullptr);
  }
  for (size_t k = 0; k < sequences.size(); ++k)
    slices.push_back({sequences[k].data() + cached[k], static_cast<int64_t>(sequences[k].size()) - cached[k],
                      &caches[k], logit_rows[k]});
  std::vector<float> batch_hidden(kIds.size() * 4 * d), logits(kIds.size() * 4 * V);
  model.forward(slices, batch_hidden.data(), logits.data());

  // The MTP module over the same slices, shifted by one (its rows need the next token).
  std::vector<float> mtp_logits(kIds.size() * 4 * V);
  int64_t row = 0;
  for (size_t k = 0; k < sequences.size(); ++k) {
    const int64_t T = static_cast<int64_t>(sequences[k].size()), p = cached[k];
    std::copy_n(&batch_hidden[row * d], (T - p) * d, &hidden[k][p * d]);
    row += T - p;
    const int64_t first = std::max<int64_t>(p - 1, 0);
    mtp_slices.push_back({sequences[k].data() + first + 1, T - 1 - first, &mtp_caches[k], logit_rows[k],
                          &hidden[k][first * d]});
  }
  model.forward_mtp(mtp_slices, mtp_logits.data());

  int64_t logit_row = 0, mtp_row = 0;
  for (size_t k = 0; k < sequences.size(); ++k) {
    const Outputs alone = run(model, sequences[k]);
    const int64_t T = static_cast<int64_t>(sequences[k].size());
    const int64_t rows = logit_rows[k] < 0 ? T - cached[k] : 1;
    EXPECT_TRUE(std::equal(&alone.logits[(T - rows) * V], &alone.logits[T * V], &logits[logit_row * V]))
        << "sequence " << k;
    const int64_t mtp_rows = logit_rows[k] < 0 ? mtp_slices[k].count : 1;
    EXPECT_TRUE(std::equal(&alone.mtp_logits[(T - 1 - mtp_rows) * V], &alone.mtp_logits[(T - 1) * V],
                           &mtp_logits[mtp_row * V]))
        << "sequence " << k;
    logit_row += rows;
    mtp_row += mtp_rows;
    EXPECT_EQ(caches[k].length(), T);
    EXPECT_EQ(mtp_caches[k].length(), T - 1);
  }
  // A cache may appear only once in a pass.
  KvCache fresh = model.make_cache(4);
  const SequenceSlice twice_fresh[2] = {{kIds.data(), 1, &fresh}, {kIds.data(), 1, &fresh}};
  EXPECT_THROW(model.forward(twice_fresh, nullptr, logits.data()), Error);
}

// The weight bytes and FLOPs of one token, written out from the config: every attention
// and dense matrix, the router, the shared expert and k of the routed experts, the head,
// one embedding row; FP8 matrices with their block scales.
TEST_P(ModelTest, TokenCostCountsEachActiveWeightOnce) {
  const ModelConfig c = preset_config("tiny");
  const std::string dir = write_tiny_model("cost_" + std::string(dtype_name(GetParam())), GetParam(), c);
  ThreadPool pool(1);
  LoadedModel loaded = load_model(dir, pool);
  const double d = double(c.hidden_size), heads = double(c.num_attention_heads);
  const double attention =
      (c.q_lora_rank ? d * double(c.q_lora_rank) + double(c.q_lora_rank) * heads * double(c.qk_head_dim())
                     : d * heads * double(c.qk_head_dim())) +
      d * double(c.kv_lora_rank + c.qk_rope_head_dim) +
      double(c.kv_lora_rank) * heads * double(c.qk_nope_head_dim + c.v_head_dim) + heads * double(c.v_head_dim) * d;
  const double expert = 3 * d * double(c.moe_intermediate_size);
  const int64_t moe_layers = c.num_hidden_layers - c.first_k_dense_replace;
  const double projections = double(c.num_hidden_layers) * attention +
                             double(c.first_k_dense_replace) * 3 * d * double(c.intermediate_size) +
                             double(moe_layers) * double(c.num_experts_per_tok + c.n_shared_experts) * expert;
  const double router = double(moe_layers) * double(c.n_routed_experts) * d, head = double(c.vocab_size) * d;
  const TokenCost cost = token_cost(c, loaded.model->weights());
  EXPECT_DOUBLE_EQ(cost.flops, 2 * (projections + router + head));
  if (GetParam() == DType::BF16) {
    EXPECT_DOUBLE_EQ(cost.weight_bytes, 2 * (projections + router + head + d));
  }
  // FP8: projections 1 byte each plus 4 bytes per 128x128 block; the rest BF16.
  if (GetParam() == DType::F8_E4M3) {
    EXPECT_GT(cost.weight_bytes, projections + 2 * (router + head + d));
    EXPECT_LT(cost.weight_bytes, 1.05 * projections + 2 * (router + head + d));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ModelTest, ::testing::Values(DType::BF16, DType::F8_E4M3),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

TEST(ModelErrorsTest, ContextOverflowAndBadTokensAreErrors) {
  const std::string dir = write_tiny_model("errors", DType::BF16, preset_config("tiny"));
  ThreadPool pool(1);
  LoadedModel loaded = load_model(dir, pool);
  Model& model = *loaded.model;
  KvCache cache = model.make_cache(4);
  std::vector<float> logits(5 * 512);
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_THROW(
      {
        try {
          model.forward(five.data(), 5, cache, nullptr, logits.data());
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("context overflow"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  const int32_t bad = 512;
  EXPECT_THROW(model.forward(&bad, 1, cache, nullptr, logits.data()), Error);
  EXPECT_EQ(cache.length(), 0);  // nothing was committed by the failed calls
}

}  // namespace
}  // namespace dsv3
