// Generation of one sequence at a time (dsv3 generate, chat, bench): a BatchGenerator with
// a single slot, run until the sequence ends.
#pragma once

#include <cstdint>
#include <vector>

#include "infer/batch_generator.h"

namespace dsv3 {

class Generator {
 public:
  // For sequences of up to `context` tokens (prompt + generated; at most the model's
  // max_position_embeddings) and up to max_drafts MTP drafts per step.
  Generator(Model& model, int64_t context, int64_t max_drafts = 0) : batch_(model, 1, context, max_drafts) {}

  // Errors (before any work) when the prompt is empty, prompt + max_new exceeds the
  // context, or drafts are asked of a model without an MTP module.
  GenerationStats generate(const std::vector<int32_t>& prompt, const GenerationOptions& options, Sampler& sampler,
                           const TokenSink& on_token);

  int64_t context() const { return batch_.context(); }
  // Errors unless a prompt of n tokens + max_new new ones fits in the context.
  void check_fits(int64_t n, int64_t max_new) const { batch_.check_fits(n, max_new); }
  // After generate(): the caches hold every token but the last generated one (which no
  // pass has consumed yet); the MTP cache stops one position earlier still.
  const KvCache& cache() const { return batch_.cache(0); }
  const KvCache& mtp_cache() const { return batch_.mtp_cache(0); }

 private:
  BatchGenerator batch_;
};

}  // namespace dsv3
