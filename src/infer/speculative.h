// The speculative-sampling acceptance rule (Leviathan et al. 2023, Chen et al. 2023): a
// token drafted from distribution q is kept with probability min(1, p(x) / q(x)), where p
// is the target model's distribution; otherwise a replacement is drawn from the residual
// max(0, p - q), renormalised. Either way the token that comes out is distributed exactly
// as p, so speculation changes the speed and never the output distribution. With greedy
// p and q (one-hot) it keeps the draft exactly when it is the target's argmax.
#pragma once

#include <cstdint>
#include <vector>

#include "infer/sampler.h"

namespace dsv3 {

struct DraftVerdict {
  bool accepted;
  int32_t token;  // the draft when accepted, else the replacement
};

// target, draft: probabilities over the vocabulary; drafted was drawn from draft.
// Random draws come from `rng`; `residual` is scratch (sized once by the caller's first use).
DraftVerdict verify_draft(const std::vector<float>& target, const std::vector<float>& draft, int32_t drafted,
                          Sampler& rng, std::vector<float>& residual);

}  // namespace dsv3
