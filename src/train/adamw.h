// AdamW (decoupled weight decay) over one flat FP32 parameter buffer, as the report trains:
// beta1 0.9, beta2 0.95, weight decay 0.1, FP32 master weights; the two moments in FP32 or,
// optionally, BF16 (rounded to nearest even after every update).
//
// Which parameters decay is the caller's choice per range (DeepSeek-V3-style models decay
// the matrices and not the norm weights or the routing bias; see decays_weight()).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/hf_weights.h"

namespace dsv3 {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double epsilon = 1e-8;
  double weight_decay = 0.1;
  bool bf16_moments = false;
};

// Matrices (projections, embeddings, heads, router) decay; norms and biases do not.
inline bool decays_weight(WeightRole role) { return role == WeightRole::Projection || role == WeightRole::Matrix; }

class AdamW {
 public:
  // `decay[i]` says whether parameter i decays.
  AdamW(std::vector<bool> decay, AdamWOptions options);

  // One step at learning rate lr: params -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * params).
  void step(float* params, const float* grads, double lr);

  int64_t steps() const { return step_; }
  // The moments as stored (BF16 moments are kept rounded), for checkpoints.
  std::vector<float>& first_moment() { return m_; }
  std::vector<float>& second_moment() { return v_; }
  void set_steps(int64_t steps) { step_ = steps; }

 private:
  std::vector<bool> decay_;
  AdamWOptions options_;
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

// The learning rate at `step` (0-based): linear warm-up from 0 over warmup_steps to
// peak, then cosine decay to final_lr at total_steps (and final_lr after).
double learning_rate(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak, double final_lr);

}  // namespace dsv3
