#include "infer/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "base/error.h"

namespace dsv3 {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 0.0f, -1.0f};

std::vector<float> softmax(const std::vector<float>& x, float temperature) {
  std::vector<float> p(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(x[i] / temperature);
  for (float& v : p) v = static_cast<float>(v / sum);
  return p;
}

TEST(SamplerTest, GreedyAndTopOneTakeTheArgmax) {
  Sampler greedy({0.0f, 0, 1.0f, 0.0f, 1.0f, 0}, 5);
  EXPECT_EQ(greedy.sample(kLogits.data(), {}), 1);
  Sampler top1({1.0f, 1, 1.0f, 0.0f, 1.0f, 0}, 5);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1.sample(kLogits.data(), {}), 1);
}

TEST(SamplerTest, DistributionAppliesTemperatureTopKTopPAndMinP) {
  std::vector<float> probs;
  Sampler plain({0.5f, 0, 1.0f, 0.0f, 1.0f, 0}, 5);
  plain.distribution(kLogits.data(), {}, probs);
  const auto expected = softmax(kLogits, 0.5f);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(probs[i], expected[i], 1e-6);

  Sampler top2({1.0f, 2, 1.0f, 0.0f, 1.0f, 0}, 5);
  top2.distribution(kLogits.data(), {}, probs);
  const double e3 = std::exp(3.0), e2 = std::exp(2.0);
  EXPECT_NEAR(probs[1], e3 / (e3 + e2), 1e-6);
  EXPECT_NEAR(probs[2], e2 / (e3 + e2), 1e-6);
  EXPECT_EQ(probs[0] + probs[3] + probs[4], 0.0f);

  // softmax(T=1): 0.6364, 0.2341, 0.0861, ...: top-p 0.8 keeps the first two (0.87 >= 0.8).
  Sampler nucleus({1.0f, 0, 0.8f, 0.0f, 1.0f, 0}, 5);
  nucleus.distribution(kLogits.data(), {}, probs);
  EXPECT_GT(probs[1], 0.0f);
  EXPECT_GT(probs[2], 0.0f);
  EXPECT_EQ(probs[0], 0.0f);

  // min-p 0.3: keep p >= 0.3 * 0.6364 = 0.19: tokens 1 and 2 (0.2341), not 0 (0.0861).
  Sampler minp({1.0f, 0, 1.0f, 0.3f, 1.0f, 0}, 5);
  minp.distribution(kLogits.data(), {}, probs);
  EXPECT_GT(probs[2], 0.0f);
  EXPECT_EQ(probs[0], 0.0f);
  EXPECT_NEAR(std::accumulate(probs.begin(), probs.end(), 0.0), 1.0, 1e-6);
}

// The transforms as written, on a whole sorted vocabulary: sort every logit (descending,
// ties by id), keep the best top_k, softmax, the nucleus prefix, min-p, renormalise.
std::vector<float> reference_distribution(const std::vector<float>& logits, const SamplingParams& p) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] / p.temperature > logits[b] / p.temperature || (logits[a] == logits[b] && a < b);
  });
  if (p.top_k > 0) order.resize(std::min(order.size(), static_cast<size_t>(p.top_k)));
  std::vector<double> probs(order.size());
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i)
    sum += probs[i] = std::exp(double(logits[order[i]] / p.temperature - logits[order[0]] / p.temperature));
  size_t keep = 0;
  for (double mass = 0; keep < order.size() && mass < p.top_p; ++keep) mass += probs[keep] / sum;
  while (keep > 1 && probs[keep - 1] < p.min_p * probs[0]) --keep;
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += probs[i];
  std::vector<float> out(logits.size(), 0.0f);
  for (size_t i = 0; i < keep; ++i) out[order[i]] = static_cast<float>(probs[i] / kept);
  return out;
}

// A vocabulary of DeepSeek-V3's order of size, peaked (a trained model: the nucleus is a few
// tokens) and flat (an untrained one: it is most of them), against the reference above.
TEST(SamplerTest, LargeVocabularyMatchesTheWholeSortReference) {
  const int64_t vocab = 20000;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (float spread : {8.0f, 0.5f}) {
    std::vector<float> logits(vocab);
    for (float& l : logits) l = spread * normal(rng);
    logits[123] = logits[456];  // a tie, broken by id
    for (const SamplingParams params : {SamplingParams{0.7f, 0, 0.95f, 0.0f, 1.0f, 0},
                                        SamplingParams{1.0f, 50, 0.9f, 0.0f, 1.0f, 0},
                                        SamplingParams{1.3f, 0, 1.0f, 0.05f, 1.0f, 0},
                                        SamplingParams{0.9f, 5000, 0.99f, 0.01f, 1.0f, 0}}) {
      Sampler sampler(params, vocab);
      std::vector<float> probs;
      sampler.distribution(logits.data(), {}, probs);
      const std::vector<float> expected = reference_distribution(logits, params);
      int64_t kept = 0;
      for (int64_t i = 0; i < vocab; ++i) {
        ASSERT_EQ(probs[i] > 0, expected[i] > 0) << "token " << i << ", spread " << spread;
        EXPECT_NEAR(probs[i], expected[i], 1e-6 * std::max(1.0f, expected[i] * vocab)) << "token " << i;
        kept += probs[i] > 0;
      }
      EXPECT_GT(kept, 0);
    }
  }
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  std::vector<float> probs;
  Sampler s({1.0f, 0, 1.0f, 0.0f, 2.0f, 0}, 5);
  s.distribution(kLogits.data(), std::vector<int32_t>{1, 4, 1}, probs);  // token 1 twice: penalised once
  const auto expected = softmax({1.0f, 1.5f, 2.0f, 0.0f, -2.0f}, 1.0f);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(probs[i], expected[i], 1e-6);
}

// Draw frequencies match the distribution within 5 standard errors of the sample count.
TEST(SamplerTest, DrawsFollowTheDistribution) {
  Sampler s({0.8f, 0, 0.9f, 0.0f, 1.0f, 123}, 5);
  std::vector<float> probs;
  s.distribution(kLogits.data(), {}, probs);
  const int n = 100000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) ++counts[s.sample(kLogits.data(), {})];
  for (size_t i = 0; i < probs.size(); ++i) {
    const double p = probs[i], sigma = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(double(counts[i]) / n, p, 5 * sigma + 1e-12) << "token " << i;
  }
}

TEST(SamplerTest, SameSeedSameTokensAndBadParametersAreErrors) {
  Sampler a({1.0f, 0, 1.0f, 0.0f, 1.0f, 9}, 5), b({1.0f, 0, 1.0f, 0.0f, 1.0f, 9}, 5);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(kLogits.data(), {}), b.sample(kLogits.data(), {}));
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0.0f, 1.0f, 0}, 5), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0.0f, 1.0f, 0}, 5), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.0f, 0.0f, 0.0f, 0}, 5), Error);
}

}  // namespace
}  // namespace dsv3
