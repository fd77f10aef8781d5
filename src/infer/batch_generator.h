// Generation for several sequences at once (continuous batching): each sequence has a slot
// with its own latent caches, and every step() runs one batched main-model pass over all
// of them, so the weights are read once per step however many sequences there are.
// Sequences start and end between steps; a started one is prefilled in the next step's
// pass, next to the others' decoding.
//
// Speculative decoding (the report's inference scheme), per sequence: each step the MTP
// module drafts the next token(s) from the main model's last hidden state, and the main
// model checks the last committed token and all drafts in the same pass. The drafts pass
// or fail by the speculative-sampling rule (infer/speculative.h), so the output
// distribution is the main model's; the first failing draft is replaced by a token drawn
// from the residual, and when all pass the last position yields one more token. The
// caches are then rolled back to the committed tokens: the main cache past the last
// accepted draft, the MTP cache past the rows that drafted from the MTP module's own
// hidden states. Since a token's forward results do not depend on which tokens share its
// pass, a sequence's tokens are exactly those it would get alone, and greedy speculative
// decoding gives exactly the tokens of plain decoding.
//
// Slots, caches and buffers are sized when the BatchGenerator is made (and when a longer
// prompt arrives); decoding steps allocate nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "infer/sampler.h"
#include "model/model.h"

namespace dsv3 {

struct GenerationOptions {
  int64_t max_new = 128;
  int64_t drafts = 0;             // MTP drafts per step; 0: one token per main-model pass
  std::vector<int32_t> stop_ids;  // generation ends after one of these (it is still reported)
};

enum class FinishReason {
  kRunning,
  kLength,     // max_new tokens were generated
  kStopToken,  // a token of stop_ids
  kSink,       // the token sink asked to stop (a stop string, a client gone)
  kCancelled,  // cancel()
};

struct GenerationStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t decode_passes = 0;  // main-model passes after the prefill
  int64_t drafted = 0, accepted = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  FinishReason finish = FinishReason::kRunning;

  double acceptance() const { return drafted ? double(accepted) / double(drafted) : 0.0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? double(generated_tokens) / decode_seconds : 0; }
};

// Receives each new token; returning false ends the sequence after it.
using TokenSink = std::function<bool(int32_t)>;

class BatchGenerator {
 public:
  // `slots` sequences of up to `context` tokens each (prompt + generated; at most the
  // model's max_position_embeddings), with up to max_drafts MTP drafts per step.
  BatchGenerator(Model& model, int64_t slots, int64_t context, int64_t max_drafts = 0);

  int64_t slots() const { return static_cast<int64_t>(slots_.size()); }
  int64_t context() const { return context_; }
  // A free slot, or -1 when all are busy.
  int64_t free_slot() const;
  bool busy() const;

  // Starts a sequence in a free slot and returns the slot; its prefill runs in the next
  // step(). Errors (before any work, leaving every slot as it was) when no slot is free,
  // the prompt is empty, prompt + max_new exceeds the context, or drafts are asked of a
  // model without an MTP module. The sampler must outlive the sequence.
  int64_t start(std::span<const int32_t> prompt, const GenerationOptions& options, Sampler& sampler, TokenSink sink);
  // Errors unless a prompt of n tokens + max_new new ones fits in the context.
  void check_fits(int64_t n, int64_t max_new) const;
  // Ends a sequence at once and frees its slot (a client went away).
  void cancel(int64_t slot);

  // One batched pass: the prefill of newly started sequences and one decoding step (plain,
  // or draft-and-verify) of the others. Finished sequences free their slots.
  void step();

  bool active(int64_t slot) const { return slots_[static_cast<size_t>(slot)].phase != Phase::kFree; }
  // The slot's latest sequence's statistics; finish says whether and why it ended.
  const GenerationStats& stats(int64_t slot) const { return slots_[static_cast<size_t>(slot)].stats; }
  // After a sequence: the caches hold every token but the last generated one (which no
  // pass has consumed yet); the MTP cache stops one position earlier still.
  const KvCache& cache(int64_t slot) const { return slots_[static_cast<size_t>(slot)].cache; }
  const KvCache& mtp_cache(int64_t slot) const { return slots_[static_cast<size_t>(slot)].mtp_cache; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kFree, kPrefill, kDecode };

  struct Slot {
    Slot(const Model& model, int64_t context, int64_t max_drafts);

    Phase phase = Phase::kFree;
    KvCache cache, mtp_cache;
    std::vector<int32_t> history;  // prompt and generated tokens
    GenerationOptions options;
    Sampler* sampler = nullptr;
    std::optional<Sampler> draft_sampler;
    TokenSink sink;
    GenerationStats stats;
    Clock::time_point decode_start;
    // MTP rows still to run: main-model hidden states of positions mtp_cache.length()..,
    // each with the token after it.
    std::vector<float> pending_hidden;
    int64_t pending = 0;
    std::vector<float> mtp_hidden;  // the MTP module's newest hidden state, for chained drafts
    std::vector<std::vector<float>> draft_probs;
    int64_t drafts = 0;                // drafts in this step
    int64_t first_row = 0, first_logit_row = 0;  // where this step's rows sit in the pass
  };

  void draft(std::span<Slot*> drafting);
  void verify_and_commit(Slot& slot);
  // Reports history[index] (the history may run further, with drafts); false when the
  // sequence ends with it, its history then cut after it.
  bool commit(Slot& slot, size_t index);
  void finish(Slot& slot);

  Model& model_;
  int64_t context_, max_drafts_;
  std::vector<Slot> slots_;
  std::vector<SequenceSlice> slices_;
  std::vector<Slot*> in_pass_, drafting_;
  std::vector<float> hidden_, logits_, mtp_logits_, mtp_hidden_, target_probs_, residual_;
};

}  // namespace dsv3
