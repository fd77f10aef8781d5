#include "infer/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

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
