// The generation loop over the latent KV cache: one prefill of the prompt, then decoding
// by a Sampler (temperature 0: greedy), optionally with MTP speculative decoding.
//
// Speculative decoding (the report's inference scheme): each step the MTP module drafts
// the next token(s) from the main model's last hidden state, and the main model checks
// the last committed token and all drafts in one forward pass. The drafts pass or fail by
// the speculative-sampling rule (infer/speculative.h), so the output distribution is the
// main model's; the first failing draft is replaced by a token drawn from the residual,
// and when all pass the pass's last position yields one more token. The caches are then
// rolled back to the committed tokens: the main cache past the last accepted draft, the
// MTP cache past the rows that drafted from the MTP module's own hidden states. Since a
// token's forward results do not depend on how many tokens share a pass, greedy
// speculative decoding gives exactly the tokens of plain decoding.
//
// Caches and buffers are sized when the Generator is made and when a longer prompt
// arrives; the decode loop allocates nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "infer/sampler.h"
#include "model/model.h"

namespace dsv3 {

struct GenerationOptions {
  int64_t max_new = 128;
  int64_t drafts = 0;              // MTP drafts per step; 0: one token per main-model pass
  std::vector<int32_t> stop_ids;   // generation ends after one of these (it is still reported)
};

struct GenerationStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t decode_passes = 0;       // main-model forward passes after the prefill
  int64_t drafted = 0, accepted = 0;
  double prefill_seconds = 0, decode_seconds = 0;

  double acceptance() const { return drafted ? double(accepted) / double(drafted) : 0.0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? double(generated_tokens) / decode_seconds : 0; }
};

// Receives each new token; returning false ends generation after it (e.g. a stop string).
using TokenSink = std::function<bool(int32_t)>;

class Generator {
 public:
  // For sequences of up to `context` tokens (prompt + generated; at most the model's
  // max_position_embeddings) and up to max_drafts drafts per step.
  Generator(Model& model, int64_t context, int64_t max_drafts = 0);

  // Errors (before any work) when the prompt is empty, prompt + max_new exceeds the
  // context, or drafts are asked of a model without an MTP module.
  GenerationStats generate(const std::vector<int32_t>& prompt, const GenerationOptions& options, Sampler& sampler,
                           const TokenSink& on_token);

  int64_t context() const { return cache_.capacity(); }
  // After generate(): the caches hold every token but the last generated one (which no
  // pass has consumed yet); the MTP cache stops one position earlier still.
  const KvCache& cache() const { return cache_; }
  const KvCache& mtp_cache() const { return mtp_cache_; }

 private:
  bool speculative_step(int64_t drafts, const float*& pending_hidden, int64_t& pending, Sampler& sampler,
                        Sampler& draft_sampler, GenerationStats& stats, const std::function<bool(int32_t)>& commit);

  Model& model_;
  int64_t max_drafts_;
  KvCache cache_, mtp_cache_;
  std::vector<int32_t> history_, accepted_drafts_;
  std::vector<float> logits_, hidden_, mtp_logits_, mtp_hidden_, target_probs_, residual_;
  std::vector<std::vector<float>> draft_probs_;
};

}  // namespace dsv3
