#include "train/adamw.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dsv3 {
namespace {

// Two steps of AdamW on two parameters, computed by hand from the update rule
// (decoupled decay, bias-corrected moments).
TEST(AdamWTest, MatchesHandComputedSteps) {
  AdamW opt({true, false}, AdamWOptions{});
  float params[2] = {1.0f, -2.0f};
  const float g1[2] = {0.5f, -1.0f};
  opt.step(params, g1, 0.01);
  // step 1: m_hat = g, v_hat = g^2 -> update = sign(g) (up to eps); decay only on param 0.
  EXPECT_NEAR(params[0], 1.0 - 0.01 * (0.5 / (0.5 + 1e-8) + 0.1 * 1.0), 1e-7);
  EXPECT_NEAR(params[1], -2.0 - 0.01 * (-1.0 / (1.0 + 1e-8)), 1e-7);
  const float g2[2] = {-0.25f, 0.0f};
  const double p0 = params[0];
  opt.step(params, g2, 0.01);
  const double m = 0.9 * (0.1 * 0.5) + 0.1 * -0.25, v = 0.95 * (0.05 * 0.25) + 0.05 * 0.0625;
  const double update = (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.9025)) + 1e-8);
  EXPECT_NEAR(params[0], p0 - 0.01 * (update + 0.1 * p0), 1e-6);
  EXPECT_EQ(opt.steps(), 2);
}

TEST(AdamWTest, Bf16MomentsAreRounded) {
  AdamWOptions options;
  options.bf16_moments = true;
  AdamW opt({false}, options);
  float param = 0.0f;
  const float g = 1.0f / 3.0f;
  opt.step(&param, &g, 0.1);
  const float m = opt.first_moment()[0];
  EXPECT_EQ(f32_to_bits(m) & 0xffffu, 0u);  // exactly representable in BF16
  EXPECT_NEAR(m, 0.1 / 3.0, 1e-3);
}

TEST(LearningRateTest, WarmupThenCosineToFinal) {
  EXPECT_NEAR(learning_rate(0, 10, 110, 1e-3, 1e-4), 1e-4, 1e-12);   // 1/10 of peak
  EXPECT_NEAR(learning_rate(9, 10, 110, 1e-3, 1e-4), 1e-3, 1e-12);   // end of warm-up
  EXPECT_NEAR(learning_rate(10, 10, 110, 1e-3, 1e-4), 1e-3, 1e-12);  // cosine starts at peak
  EXPECT_NEAR(learning_rate(60, 10, 110, 1e-3, 1e-4), 0.55e-3, 1e-12);  // halfway: mean of peak and final
  EXPECT_NEAR(learning_rate(110, 10, 110, 1e-3, 1e-4), 1e-4, 1e-12);
  EXPECT_NEAR(learning_rate(500, 10, 110, 1e-3, 1e-4), 1e-4, 1e-12);
}

}  // namespace
}  // namespace dsv3
