#include "model/router.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dsv3 {
namespace {

// Inverse of the sigmoid, so tests can state scores directly.
float logit(float p) { return std::log(p / (1 - p)); }

ModelConfig v3_routing(int64_t experts, int64_t groups, int64_t topk_group, int64_t k) {
  ModelConfig c;
  c.n_routed_experts = experts;
  c.n_group = groups;
  c.topk_group = topk_group;
  c.num_experts_per_tok = k;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.topk_method = TopkMethod::NoauxTc;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  return c;
}

struct Routed {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

Routed route(const ModelConfig& c, const std::vector<float>& scores, const std::vector<float>& bias) {
  std::vector<float> logits;
  for (float s : scores) logits.push_back(c.scoring_func == ScoringFunc::Sigmoid ? logit(s) : s);
  std::vector<float> scratch(3 * scores.size());
  Routed r{std::vector<int32_t>(c.num_experts_per_tok), std::vector<float>(c.num_experts_per_tok)};
  route_token(c, logits.data(), bias.empty() ? nullptr : bias.data(), scratch.data(), r.experts.data(),
              r.weights.data());
  return r;
}

TEST(RouterTest, GroupsAreRankedBySumOfTheirTopTwo) {
  // 4 groups of 2. Group 0 has the single best expert but a weak partner (0.9 + 0.1 = 1.0);
  // groups 1 (0.6 + 0.6) and 2 (0.55 + 0.55) beat it on the top-2 sum.
  const ModelConfig c = v3_routing(8, 4, 2, 3);
  const Routed r = route(c, {0.9f, 0.1f, 0.6f, 0.6f, 0.55f, 0.55f, 0.2f, 0.2f}, {});
  EXPECT_EQ(r.experts, (std::vector<int32_t>{2, 3, 4}));
  const float sum = 0.6f + 0.6f + 0.55f;
  EXPECT_NEAR(r.weights[0], 0.6f / sum * 2.5f, 1e-6);
  EXPECT_NEAR(r.weights[2], 0.55f / sum * 2.5f, 1e-6);
}

TEST(RouterTest, BiasChangesTheChoiceButNotTheWeights) {
  ModelConfig c = v3_routing(4, 1, 1, 2);
  const std::vector<float> scores = {0.8f, 0.7f, 0.3f, 0.2f};
  const Routed r = route(c, scores, {0.0f, 0.0f, 0.6f, 0.0f});
  EXPECT_EQ(r.experts, (std::vector<int32_t>{2, 0}));  // 0.3 + 0.6 = 0.9 beats 0.8
  EXPECT_NEAR(r.weights[0], 0.3f / 1.1f * 2.5f, 1e-6);  // unbiased score 0.3
  EXPECT_NEAR(r.weights[1], 0.8f / 1.1f * 2.5f, 1e-6);
}

TEST(RouterTest, DeepSeekV2SoftmaxGreedyWithoutNormalisation) {
  ModelConfig c = v3_routing(4, 1, 1, 2);
  c.scoring_func = ScoringFunc::Softmax;
  c.topk_method = TopkMethod::Greedy;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 1.0;
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f};
  const Routed r = route(c, logits, {});
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(0.0);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(r.weights[1], std::exp(2.0) / z, 1e-6);
}

TEST(RouterTest, GroupLimitedGreedyRanksGroupsByTheirBest) {
  ModelConfig c = v3_routing(8, 4, 1, 2);
  c.scoring_func = ScoringFunc::Softmax;
  c.topk_method = TopkMethod::GroupLimitedGreedy;
  // Group 3 has the best single logit; top-2 sums would prefer group 1.
  const Routed r = route(c, {0.0f, 0.0f, 2.0f, 2.0f, 0.0f, 0.0f, 2.5f, -5.0f}, {});
  EXPECT_EQ(r.experts, (std::vector<int32_t>{6, 7}));
}

TEST(RouterTest, NanScoresNeverProduceAnInvalidExpert) {
  const ModelConfig c = v3_routing(4, 2, 1, 2);
  std::vector<float> logits(4, NAN), scratch(12), weights(2);
  std::vector<int32_t> experts(2, -1);
  route_token(c, logits.data(), nullptr, scratch.data(), experts.data(), weights.data());
  for (int32_t e : experts) EXPECT_TRUE(e >= 0 && e < 4);
}

}  // namespace
}  // namespace dsv3
