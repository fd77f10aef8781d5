// Greedy generation over the latent KV cache: one prefill of the prompt, then one token at
// a time. (Sampling, stop strings and MTP speculative decoding come with `dsv3 generate`.)
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"

namespace dsv3 {

struct GenerationStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Calls on_token for each new token; stops after max_new tokens, at `stop_id`, or at the
// end of the context (max_position_embeddings).
GenerationStats greedy_generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, int32_t stop_id,
                                const std::function<void(int32_t)>& on_token);

}  // namespace dsv3
