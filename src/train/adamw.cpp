#include "train/adamw.h"

#include <cmath>
#include <numbers>

#include "tensor/dtype.h"

namespace dsv3 {

AdamW::AdamW(std::vector<bool> decay, AdamWOptions options)
    : decay_(std::move(decay)), options_(options), m_(decay_.size(), 0.0f), v_(decay_.size(), 0.0f) {}

void AdamW::step(float* params, const float* grads, double lr) {
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double correction1 = 1.0 - std::pow(b1, double(step_));
  const double correction2 = 1.0 - std::pow(b2, double(step_));
  const auto round = [&](double x) {
    const float f = static_cast<float>(x);
    return options_.bf16_moments ? bf16_to_f32(f32_to_bf16(f)) : f;
  };
  for (size_t i = 0; i < decay_.size(); ++i) {
    const double g = grads[i];
    m_[i] = round(b1 * m_[i] + (1.0 - b1) * g);
    v_[i] = round(b2 * v_[i] + (1.0 - b2) * g * g);
    const double update = (m_[i] / correction1) / (std::sqrt(v_[i] / correction2) + options_.epsilon);
    const double decay = decay_[i] ? options_.weight_decay * params[i] : 0.0;
    params[i] = static_cast<float>(params[i] - lr * (update + decay));
  }
}

double learning_rate(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak, double final_lr) {
  if (step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  if (step >= total_steps) return final_lr;
  const double progress = double(step - warmup_steps) / double(std::max<int64_t>(1, total_steps - warmup_steps));
  return final_lr + 0.5 * (peak - final_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace dsv3
