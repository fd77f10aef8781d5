// The generation loop over the latent KV cache: one prefill of the prompt, then one token
// per step drawn by a Sampler (temperature 0: greedy). The cache and the logits buffer are
// sized once, so the per-token loop allocates nothing.
// (MTP speculative decoding is the next step: issue 5.)
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "infer/sampler.h"
#include "model/model.h"

namespace dsv3 {

struct GenerationStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Calls on_token for each new token; stops after max_new tokens or after a token in
// stop_ids (which is passed to on_token). Throws Error when prompt + max_new exceed the
// model's context (max_position_embeddings).
GenerationStats generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, Sampler& sampler,
                         const std::vector<int32_t>& stop_ids, const std::function<void(int32_t)>& on_token);

}  // namespace dsv3
