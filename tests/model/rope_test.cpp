#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dsv3 {
namespace {

ModelConfig v3_attention_config() {
  ModelConfig c;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.rope_theta = 10000;
  YarnScaling y;
  y.factor = 40;
  y.original_max_position_embeddings = 4096;
  y.beta_fast = 32;
  y.beta_slow = 1;
  y.mscale = 1.0;
  y.mscale_all_dim = 1.0;
  c.rope_scaling = y;
  return c;
}

TEST(RopeTest, PlainFrequenciesWithoutScaling) {
  ModelConfig c = v3_attention_config();
  c.rope_scaling.reset();
  const RopeParams p = rope_params(c);
  ASSERT_EQ(p.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(p.inv_freq[i], float(std::pow(10000.0, -2.0 * i / 64.0)));
  EXPECT_FLOAT_EQ(p.magnitude, 1.0f);
  EXPECT_FLOAT_EQ(p.softmax_scale, float(1.0 / std::sqrt(192.0)));
}

// The released model's YaRN: corr(32) = 10.47 -> low 10, corr(1) = 22.5 -> high 23;
// dims below 10 keep their frequency, dims from 23 on are divided by 40, linear between.
TEST(RopeTest, YarnRampOfTheReleasedModel) {
  const RopeParams p = rope_params(v3_attention_config());
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(10000.0, -2.0 * i / 64.0);
    const double ramp = std::clamp((i - 10.0) / (23.0 - 10.0), 0.0, 1.0);
    EXPECT_NEAR(p.inv_freq[i], base / 40 * ramp + base * (1 - ramp), 1e-7 * base) << i;
  }
  // m = 0.1 ln 40 + 1 = 1.3689 multiplies the softmax scale twice; cos/sin stay unscaled.
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(m, 1.3689, 1e-4);
  EXPECT_NEAR(p.softmax_scale, m * m / std::sqrt(192.0), 1e-7);
  EXPECT_FLOAT_EQ(p.magnitude, 1.0f);
}

TEST(RopeTest, YarnWithDifferentMscalesScalesCosSin) {
  ModelConfig c = v3_attention_config();
  c.rope_scaling->mscale = 0.707;
  c.rope_scaling->mscale_all_dim = 1.0;
  const RopeParams p = rope_params(c);
  EXPECT_NEAR(p.magnitude, (0.0707 * std::log(40.0) + 1) / (0.1 * std::log(40.0) + 1), 1e-6);
}

TEST(RopeTest, NoSoftmaxFactorWithoutMscaleAllDim) {
  ModelConfig c = v3_attention_config();
  c.rope_scaling->mscale_all_dim = 0.0;
  EXPECT_FLOAT_EQ(rope_params(c).softmax_scale, float(1.0 / std::sqrt(192.0)));
}

}  // namespace
}  // namespace dsv3
