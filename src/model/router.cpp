#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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
  float* scores = scratch;         // the affinities s
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

  for (int64_t i = 0; i < k; ++i) {
    const int64_t e = argmax(selection, n);
    selection[e] = std::numeric_limits<float>::quiet_NaN();
    experts[i] = static_cast<int32_t>(e);
  }
  gate_weights(c, logits, experts, weights);
}

namespace {

// The unbiased scores of the chosen experts; for softmax also its normaliser over all experts.
template <typename T>
void chosen_scores(const ModelConfig& c, const T* logits, const int32_t* experts, T* scores, double& softmax_max,
                   double& softmax_sum) {
  const int64_t k = c.num_experts_per_tok;
  if (c.scoring_func == ScoringFunc::Sigmoid) {
    for (int64_t i = 0; i < k; ++i) scores[i] = T(1) / (T(1) + std::exp(-logits[experts[i]]));
    return;
  }
  softmax_max = double(*std::max_element(logits, logits + c.n_routed_experts));
  softmax_sum = 0.0;
  for (int64_t e = 0; e < c.n_routed_experts; ++e) softmax_sum += std::exp(double(logits[e]) - softmax_max);
  for (int64_t i = 0; i < k; ++i)
    scores[i] = static_cast<T>(std::exp(double(logits[experts[i]]) - softmax_max) / softmax_sum);
}

}  // namespace

template <typename T>
void gate_weights(const ModelConfig& c, const T* logits, const int32_t* experts, T* weights) {
  const int64_t k = c.num_experts_per_tok;
  double max = 0, sum_exp = 0;
  chosen_scores(c, logits, experts, weights, max, sum_exp);
  T sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += weights[i];
  const T scale = static_cast<T>(c.routed_scaling_factor) / (c.norm_topk_prob ? sum : T(1));
  for (int64_t i = 0; i < k; ++i) weights[i] *= scale;
}

template <typename T>
void gate_weights_backward(const ModelConfig& c, const T* logits, const int32_t* experts, const T* dweights,
                           T* dlogits) {
  const int64_t k = c.num_experts_per_tok, n = c.n_routed_experts;
  std::vector<T> scores(static_cast<size_t>(k));
  double max = 0, sum_exp = 0;
  chosen_scores(c, logits, experts, scores.data(), max, sum_exp);
  const T rsf = static_cast<T>(c.routed_scaling_factor);
  // dL/ds_i for the chosen scores: with S = sum s, g_i = rsf s_i / S gives
  // ds_i = rsf (dg_i - sum_j dg_j s_j / S) / S; without normalisation ds_i = rsf dg_i.
  std::vector<T> dscores(static_cast<size_t>(k));
  T sum = 0, weighted = 0;
  for (int64_t i = 0; i < k; ++i) sum += scores[i], weighted += dweights[i] * scores[i];
  for (int64_t i = 0; i < k; ++i)
    dscores[i] = c.norm_topk_prob ? rsf * (dweights[i] - weighted / sum) / sum : rsf * dweights[i];

  std::fill(dlogits, dlogits + n, T(0));
  if (c.scoring_func == ScoringFunc::Sigmoid) {
    for (int64_t i = 0; i < k; ++i) dlogits[experts[i]] += dscores[i] * scores[i] * (T(1) - scores[i]);
    return;
  }
  // Softmax: dz_e = p_e (ds_e - sum_j p_j ds_j), where only the chosen scores have ds.
  T p_ds = 0;
  for (int64_t i = 0; i < k; ++i) p_ds += scores[i] * dscores[i];
  for (int64_t e = 0; e < n; ++e) dlogits[e] = static_cast<T>(std::exp(double(logits[e]) - max) / sum_exp) * -p_ds;
  for (int64_t i = 0; i < k; ++i) dlogits[experts[i]] += scores[i] * dscores[i];
}

template void gate_weights<float>(const ModelConfig&, const float*, const int32_t*, float*);
template void gate_weights<double>(const ModelConfig&, const double*, const int32_t*, double*);
template void gate_weights_backward<float>(const ModelConfig&, const float*, const int32_t*, const float*, float*);
template void gate_weights_backward<double>(const ModelConfig&, const double*, const int32_t*, const double*, double*);

}  // namespace dsv3
