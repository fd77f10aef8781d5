#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsv3 {

namespace {

// Index of the largest value among those not yet taken (ties: lowest index).
int64_t argmax(const float* values, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(values[i]) && (best < 0 || values[i] > values[best])) best = i;
  return best;
}

}  // namespace

void route_token(const ModelConfig& c, const float* logits, const float* bias, float* scratch, int32_t* experts,
                 float* weights) {
  const int64_t n = c.n_routed_experts;
  const int64_t k = c.num_experts_per_tok;
  float* scores = scratch;         // the affinities s that weight the chosen experts
  float* selection = scratch + n;  // s + bias, what the choice is made on; NaN marks "unavailable"

  if (c.scoring_func == ScoringFunc::Sigmoid) {
    for (int64_t e = 0; e < n; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    const float max_logit = *std::max_element(logits, logits + n);
    float sum = 0.0f;
    for (int64_t e = 0; e < n; ++e) sum += scores[e] = std::exp(logits[e] - max_logit);
    for (int64_t e = 0; e < n; ++e) scores[e] /= sum;
  }
  for (int64_t e = 0; e < n; ++e) {
    selection[e] = scores[e] + (bias ? bias[e] : 0.0f);
    if (std::isnan(selection[e])) selection[e] = -std::numeric_limits<float>::infinity();  // NaN weights: last choice
  }

  // Group-limited routing: keep the topk_group groups with the best group score.
  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) {
    const int64_t group_size = n / c.n_group;
    float* group_score = scratch + 2 * n;  // n_group <= n
    for (int64_t g = 0; g < c.n_group; ++g) {
      const float* s = selection + g * group_size;
      if (c.topk_method == TopkMethod::NoauxTc) {  // sum of the group's two best
        float first = -std::numeric_limits<float>::infinity(), second = first;
        for (int64_t i = 0; i < group_size; ++i) {
          if (s[i] > first) {
            second = first;
            first = s[i];
          } else if (s[i] > second) {
            second = s[i];
          }
        }
        group_score[g] = first + second;
      } else {  // the group's best
        group_score[g] = *std::max_element(s, s + group_size);
      }
    }
    // Picked groups are marked NaN; the groups still holding a number are dropped.
    for (int64_t i = 0; i < c.topk_group; ++i)
      group_score[argmax(group_score, c.n_group)] = std::numeric_limits<float>::quiet_NaN();
    for (int64_t g = 0; g < c.n_group; ++g)
      if (!std::isnan(group_score[g])) std::fill(selection + g * group_size, selection + (g + 1) * group_size,
                              std::numeric_limits<float>::quiet_NaN());
  }

  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t e = argmax(selection, n);
    selection[e] = std::numeric_limits<float>::quiet_NaN();
    experts[i] = static_cast<int32_t>(e);
    weights[i] = scores[e];
    sum += scores[e];
  }
  const float scale = static_cast<float>(c.routed_scaling_factor) / (c.norm_topk_prob ? sum : 1.0f);
  for (int64_t i = 0; i < k; ++i) weights[i] *= scale;
}

}  // namespace dsv3
