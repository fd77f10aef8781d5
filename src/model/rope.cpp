#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dsv3 {

namespace {

// YaRN's attention-temperature factor ("mscale"): 0.1 * m * ln(s) + 1 for s > 1.
double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

// The rotary dimension whose wavelength completes `rotations` turns over the original context.
double correction_dim(double rotations, double dim, double base, double original_context) {
  return dim * std::log(original_context / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

}  // namespace

RopeParams rope_params(const ModelConfig& c) {
  const int64_t dim = c.qk_rope_head_dim;
  const int64_t half = dim / 2;
  RopeParams p;
  p.inv_freq.resize(static_cast<size_t>(half));
  p.softmax_scale = static_cast<float>(1.0 / std::sqrt(double(c.qk_head_dim())));

  std::vector<double> extrapolated(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) extrapolated[i] = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(dim));

  if (!c.rope_scaling) {
    for (int64_t i = 0; i < half; ++i) p.inv_freq[i] = static_cast<float>(extrapolated[i]);
    return p;
  }
  const YarnScaling& y = *c.rope_scaling;
  const double context = double(y.original_max_position_embeddings);
  const double low = std::max(std::floor(correction_dim(y.beta_fast, double(dim), c.rope_theta, context)), 0.0);
  double high = std::min(std::ceil(correction_dim(y.beta_slow, double(dim), c.rope_theta, context)), double(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int64_t i = 0; i < half; ++i) {
    // ramp 0: high-frequency dims keep their frequency; ramp 1: low-frequency dims are interpolated.
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    p.inv_freq[i] = static_cast<float>(extrapolated[i] / y.factor * ramp + extrapolated[i] * (1.0 - ramp));
  }
  p.magnitude = static_cast<float>(yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim));
  if (y.mscale_all_dim != 0.0) {
    const double m = yarn_mscale(y.factor, y.mscale_all_dim);
    p.softmax_scale = static_cast<float>(m * m / std::sqrt(double(c.qk_head_dim())));
  }
  return p;
}

}  // namespace dsv3
