#include "infer/speculative.h"

#include <algorithm>

namespace dsv3 {

DraftVerdict verify_draft(const std::vector<float>& target, const std::vector<float>& draft, int32_t drafted,
                          Sampler& rng, std::vector<float>& residual) {
  const float p = target[static_cast<size_t>(drafted)], q = draft[static_cast<size_t>(drafted)];
  if (p >= q) return {true, drafted};  // ratio >= 1: always kept (no draw, so greedy needs no randomness)
  if (rng.uniform() * q < p) return {true, drafted};
  residual.resize(target.size());
  bool any = false;
  for (size_t i = 0; i < target.size(); ++i) {
    residual[i] = std::max(0.0f, target[i] - draft[i]);
    any = any || residual[i] > 0;
  }
  // p < q at the draft means some other token has p > q, unless rounding hid it; then p
  // itself is the right fallback (the residual and p agree up to that rounding).
  return {false, any ? rng.draw(residual) : rng.draw(target)};
}

}  // namespace dsv3
