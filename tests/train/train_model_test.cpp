#include "train/train_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

// Random parameters that make every part of the model matter.
template <typename T>
std::vector<T> random_parameters(const ParameterLayout<T>& layout, uint32_t seed) {
  std::vector<T> values(layout.size);
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const WeightSlot& s = layout.slots[i];
    if (s.mtp_copy_of_main) continue;
    const int64_t n = s.rows * std::max<int64_t>(s.cols, 1);
    for (int64_t j = 0; j < n; ++j) {
      const double z = normal(rng);
      values[layout.offsets[i] + j] = static_cast<T>(
          s.role == WeightRole::Norm ? 1.0 + 0.1 * z : s.role == WeightRole::Bias ? 0.05 * z : 0.15 * z);
    }
  }
  return values;
}

ModelConfig tiny_config() {
  ModelConfig c = preset_config("tiny");
  c.vocab_size = 48;
  c.hidden_size = 16;
  c.num_attention_heads = 2;
  c.q_lora_rank = 12;
  c.kv_lora_rank = 10;
  c.qk_nope_head_dim = 6;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 5;
  c.intermediate_size = 20;
  c.moe_intermediate_size = 7;
  YarnScaling y;
  y.factor = 4;
  y.original_max_position_embeddings = 4;
  y.mscale_all_dim = 1.0;
  c.rope_scaling = y;
  c.validate();
  return c;
}

const std::vector<int32_t> kTokens = {3, 17, 40, 3, 9, 22, 47, 1, 30};

// The gradient of the whole model (main + 0.3 * MTP loss + balance loss) against central
// differences in double precision, on a few coordinates of every tensor.
TEST(TrainModelTest, GradientMatchesFiniteDifferencesInDouble) {
  // q-LoRA without the balance loss; plain q with it; DeepSeek-V2-style softmax routing with it.
  for (int variant = 0; variant < 3; ++variant) {
    ModelConfig c = tiny_config();
    double alpha = 0.05;
    if (variant == 0) alpha = 0;
    if (variant >= 1) c.q_lora_rank = 0;
    if (variant == 2) {
      c.scoring_func = ScoringFunc::Softmax;
      c.topk_method = TopkMethod::GroupLimitedGreedy;
      c.norm_topk_prob = false;
    }
    const bool q_lora = c.q_lora_rank > 0;
    ThreadPool pool(2);
    ParameterLayout<double> layout(c);
    std::vector<double> params = random_parameters(layout, 7);
    std::vector<double> grads(layout.size, 0.0);
    TrainModel<double> model(c, pool);
    model.set_balance_alpha(alpha);
    const double lambda = 0.3;
    TrainWeights<double> w = layout.views(params.data()), g = layout.views(grads.data());
    const auto first = model.run(w, kTokens.data(), static_cast<int64_t>(kTokens.size()), lambda, &g);
    EXPECT_EQ(first.balance > 0, alpha > 0);

    auto loss = [&] {
      const auto l = model.run(w, kTokens.data(), static_cast<int64_t>(kTokens.size()), lambda, nullptr);
      return l.main + lambda * l.mtp + l.balance;
    };
    std::mt19937 rng(3);
    double diff = 0, norm = 0;
    int checked = 0;
    for (size_t i = 0; i < layout.slots.size(); ++i) {
      const WeightSlot& s = layout.slots[i];
      if (s.role == WeightRole::Bias || s.mtp_copy_of_main) continue;  // the bias only selects
      const size_t n = static_cast<size_t>(s.rows * std::max<int64_t>(s.cols, 1));
      for (int k = 0; k < 3; ++k) {
        const size_t at = layout.offsets[i] + rng() % n;
        const double saved = params[at], h = 1e-5;
        params[at] = saved + h;
        const double plus = loss();
        params[at] = saved - h;
        const double minus = loss();
        params[at] = saved;
        const double numeric = (plus - minus) / (2 * h);
        diff += (numeric - grads[at]) * (numeric - grads[at]);
        norm += numeric * numeric;
        ++checked;
        EXPECT_NEAR(grads[at], numeric, 1e-6 * std::max(1.0, std::fabs(numeric))) << s.name << " variant " << variant;
      }
    }
    EXPECT_GT(checked, 100);
    EXPECT_LE(std::sqrt(diff / norm), 1e-6) << "variant " << variant << " q_lora " << q_lora;
  }
}

// The training forward (plain MLA) gives the inference engine's logits (absorbed MLA over
// the latent cache): its loss equals the cross-entropy of `dsv3 logits` on the same weights.
TEST(TrainModelTest, LossesMatchTheInferenceEngine) {
  const ModelConfig c = tiny_config();
  ThreadPool pool(2);
  ParameterLayout<float> layout(c);
  std::vector<float> params = random_parameters(layout, 11);
  TrainModel<float> model(c, pool);
  const int64_t n = static_cast<int64_t>(kTokens.size());
  const auto losses = model.run(layout.views(params.data()), kTokens.data(), n, 0.3, nullptr);

  const std::string dir = (std::filesystem::path(testing::TempDir()) / "train_vs_infer").string();
  write_checkpoint(dir, c, DType::F32, [&](const WeightSlot& slot, float* values) {
    for (size_t i = 0; i < layout.slots.size(); ++i)
      if (layout.slots[i].name == slot.name)
        std::copy_n(&params[layout.offsets[i]], slot.rows * std::max<int64_t>(slot.cols, 1), values);
  });
  LoadedModel loaded = load_model(dir, pool);
  const int64_t d = c.hidden_size, V = c.vocab_size;
  std::vector<float> hidden(n * d), logits(n * V), mtp_logits((n - 1) * V);
  KvCache cache = loaded.model->make_cache(n), mtp_cache = loaded.model->make_mtp_cache(n);
  loaded.model->forward(kTokens.data(), n, cache, hidden.data(), logits.data());
  loaded.model->forward_mtp(kTokens.data() + 1, hidden.data(), n - 1, mtp_cache, mtp_logits.data());
  std::vector<int32_t> next(kTokens.begin() + 1, kTokens.end()), after_next(kTokens.begin() + 2, kTokens.end());
  next.push_back(-1);
  after_next.push_back(-1);
  EXPECT_NEAR(losses.main, cross_entropy(logits.data(), next.data(), n, V) / double(n - 1), 1e-5);
  EXPECT_NEAR(losses.mtp, cross_entropy(mtp_logits.data(), after_next.data(), n - 1, V) / double(n - 2), 1e-5);
}

// Lower-precision projections change the numbers a little, not the model: losses and
// gradients stay close to FP32's, BF16 closer than FP8, and neither is a no-op. (The
// GEMMs themselves are checked exactly in tests/kernels/quantized_linear_test.cpp.)
TEST(TrainModelTest, Bf16AndFp8ProjectionsStayCloseToFp32) {
  // Dense layers only and no MTP loss (its block is MoE): a perturbed hidden state may pick
  // other experts, which moves gradients by far more than the rounding does.
  ModelConfig c = tiny_config();
  c.first_k_dense_replace = c.num_hidden_layers;
  ThreadPool pool(2);
  ParameterLayout<float> layout(c);
  std::vector<float> params = random_parameters(layout, 13);
  const int64_t n = static_cast<int64_t>(kTokens.size());
  auto run = [&](GemmPrecision precision, std::vector<float>& grads) {
    TrainModel<float> model(c, pool);
    model.set_projection_precision(precision);
    grads.assign(layout.size, 0.0f);
    TrainWeights<float> g = layout.views(grads.data());
    return model.run(layout.views(params.data()), kTokens.data(), n, 0.0, &g).main;
  };
  std::vector<float> g32, g16, g8;
  const double l32 = run(GemmPrecision::kF32, g32), l16 = run(GemmPrecision::kBF16, g16),
               l8 = run(GemmPrecision::kFP8, g8);
  auto relative = [&](const std::vector<float>& g) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff += (double(g[i]) - g32[i]) * (double(g[i]) - g32[i]);
      norm += double(g32[i]) * g32[i];
    }
    return std::sqrt(diff / norm);
  };
  EXPECT_NE(l16, l32);
  EXPECT_NE(l8, l32);
  EXPECT_LT(std::fabs(l16 - l32) / l32, 1e-3);
  EXPECT_LT(std::fabs(l8 - l32) / l32, 1e-2);
  // E4M3 keeps 4 significant bits (BF16 8): measured 1.3e-2 and 1.7e-1 on this model.
  EXPECT_LT(relative(g16), 3e-2);
  EXPECT_LT(relative(g8), 3e-1);
  EXPECT_LT(relative(g16), relative(g8));
}

// Pipeline stages chained by hand (activations forward, their gradients back) compute exactly
// what run() computes: the same losses, expert loads and gradients, bit for bit.
TEST(TrainModelTest, ChainedStagesGiveTheWholeModelBitForBit) {
  ModelConfig c = tiny_config();
  c.num_hidden_layers = 4;  // a dense layer and three MoE layers, then the MTP block
  c.validate();
  ThreadPool pool(2);
  ParameterLayout<float> layout(c);
  std::vector<float> params = random_parameters(layout, 11);
  TrainModel<float> model(c, pool);
  model.set_balance_alpha(0.05);
  const auto w = layout.views(params.data());
  const int64_t n = static_cast<int64_t>(kTokens.size()), d = c.hidden_size;

  std::vector<float> whole_grads(layout.size, 0.0f);
  auto g = layout.views(whole_grads.data());
  std::vector<int64_t> whole_counts;
  const auto whole = model.run(w, kTokens.data(), n, 0.3, &g, &whole_counts);

  for (int64_t count : {2, 3, 4}) {
    const auto stages = TrainModel<float>::pipeline_stages(c, count);
    ASSERT_EQ(static_cast<int64_t>(stages.size()), count);
    EXPECT_EQ(stages.front().first_layer, 0);
    EXPECT_EQ(stages.back().end_layer, 4);
    std::vector<float> grads(layout.size, 0.0f);
    auto sg = layout.views(grads.data());
    std::vector<int64_t> counts;
    TrainModel<float>::Losses losses;
    std::vector<std::vector<float>> boundary(static_cast<size_t>(count + 1), std::vector<float>(n * d));
    std::vector<TrainModel<float>::Activations> states;
    for (int64_t s = 0; s < count; ++s)
      states.push_back(model.forward_stage(w, stages[s], kTokens.data(), n, boundary[s].data(),
                                           boundary[s + 1].data(), losses, &counts));
    for (int64_t s = count - 1; s >= 0; --s)
      model.backward_stage(w, stages[s], *states[s], 0.3, boundary[s + 1].data(), boundary[s].data(), sg);
    EXPECT_EQ(losses.main, whole.main);
    EXPECT_EQ(losses.mtp, whole.mtp);
    EXPECT_DOUBLE_EQ(losses.balance, whole.balance);  // summed per stage, so in another order
    EXPECT_EQ(counts, whole_counts);
    EXPECT_EQ(grads, whole_grads) << count << " stages";
  }
  EXPECT_THROW(TrainModel<float>::pipeline_stages(c, 5), Error);
}

// The zero-bubble split: the input part of a stage's backward and, later, its weight part add
// exactly what one backward adds, at every projection precision; the input part alone leaves
// the linear layers' weight gradients untouched and already gives the stage's input gradient.
TEST(TrainModelTest, SplitBackwardAddsWhatOneBackwardAdds) {
  ModelConfig c = tiny_config();
  c.num_hidden_layers = 3;
  c.validate();
  ThreadPool pool(2);
  ParameterLayout<float> layout(c);
  std::vector<float> params = random_parameters(layout, 12);
  const auto w = layout.views(params.data());
  const int64_t n = static_cast<int64_t>(kTokens.size()), d = c.hidden_size;
  const auto stages = TrainModel<float>::pipeline_stages(c, 2);
  for (GemmPrecision precision : {GemmPrecision::kF32, GemmPrecision::kBF16, GemmPrecision::kFP8}) {
    TrainModel<float> model(c, pool);
    model.set_balance_alpha(0.05);
    model.set_projection_precision(precision);
    std::vector<float> boundary(static_cast<size_t>(n * d)), dx_out(boundary.size(), 0.01f);
    TrainModel<float>::Losses losses;
    for (const auto& stage : stages) {
      const auto state =
          model.forward_stage(w, stage, kTokens.data(), n, boundary.data(), boundary.data(), losses, nullptr);
      std::vector<float> once(layout.size, 0.0f), split(layout.size, 0.0f), dx_once(boundary.size()),
          dx_split(boundary.size());
      auto g_once = layout.views(once.data()), g_split = layout.views(split.data());
      model.backward_stage(w, stage, *state, 0.3, dx_out.data(), dx_once.data(), g_once);
      TrainModel<float>::DeferredWeightGradients deferred;
      model.backward_stage(w, stage, *state, 0.3, dx_out.data(), dx_split.data(), g_split, &deferred);
      EXPECT_FALSE(deferred.empty());
      const auto& o = g_split.layers[static_cast<size_t>(stage.end_layer - 1)].attn.o;
      EXPECT_TRUE(std::all_of(o.data, o.data + o.rows * o.cols, [](float x) { return x == 0.0f; }));
      if (stage.first_layer > 0) {
        EXPECT_EQ(dx_split, dx_once);
      }
      model.weight_gradients(deferred);
      EXPECT_TRUE(deferred.empty());
      EXPECT_EQ(split, once) << "stage from layer " << stage.first_layer;
    }
  }
}

}  // namespace
}  // namespace dsv3
