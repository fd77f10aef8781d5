#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "infer/speculative.h"

namespace dsv3 {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

Generator::Generator(Model& model, int64_t context, int64_t max_drafts)
    : model_(model), max_drafts_(max_drafts), cache_(model.make_cache(context)),
      mtp_cache_(model.has_mtp() ? model.make_mtp_cache(context) : KvCache(0, 0, 0)) {
  const ModelConfig& c = model.config();
  if (context < 1 || context > c.max_position_embeddings)
    fail("the context must be in [1, ", c.max_position_embeddings, "] (max_position_embeddings), got ", context);
  if (max_drafts < 0) fail("the number of drafts must be >= 0, got ", max_drafts);
  if (max_drafts > 0 && !model.has_mtp())
    fail("speculative decoding needs an MTP module, and this model has none (num_nextn_predict_layers is 0)");
  const size_t V = static_cast<size_t>(c.vocab_size), d = static_cast<size_t>(c.hidden_size);
  const size_t rows = static_cast<size_t>(max_drafts) + 1;
  history_.reserve(static_cast<size_t>(context));
  accepted_drafts_.reserve(static_cast<size_t>(max_drafts));
  logits_.resize(rows * V);
  hidden_.resize(rows * d);
  target_probs_.reserve(V);
  residual_.reserve(V);
  if (max_drafts > 0) {
    mtp_logits_.resize(V);
    mtp_hidden_.resize((rows + 1) * d);
    draft_probs_.assign(static_cast<size_t>(max_drafts), std::vector<float>(V));
  }
}

GenerationStats Generator::generate(const std::vector<int32_t>& prompt, const GenerationOptions& options,
                                    Sampler& sampler, const TokenSink& on_token) {
  const ModelConfig& c = model_.config();
  const int64_t n = static_cast<int64_t>(prompt.size()), d = c.hidden_size;
  if (n == 0) fail("the prompt is empty");
  if (options.max_new < 0) fail("the number of tokens to generate must be >= 0, got ", options.max_new);
  if (n + options.max_new > context())
    fail("the prompt's ", n, " tokens + ", options.max_new, " new tokens exceed the context of ", context(),
         context() == c.max_position_embeddings ? " (max_position_embeddings)" : "");
  if (options.drafts < 0 || options.drafts > max_drafts_)
    fail("drafts per step must be in [0, ", max_drafts_, "], got ", options.drafts);
  const bool speculate = options.drafts > 0;
  cache_.truncate(0);
  if (model_.has_mtp()) mtp_cache_.truncate(0);
  history_.assign(prompt.begin(), prompt.end());
  if (speculate && hidden_.size() < static_cast<size_t>(n * d)) hidden_.resize(static_cast<size_t>(n * d));

  GenerationStats stats;
  stats.prompt_tokens = n;
  // One std::function for the whole run: wrapping the lambda per step would allocate.
  const std::function<bool(int32_t)> commit = [&](int32_t token) {
    history_.push_back(token);
    ++stats.generated_tokens;
    const bool go_on = on_token(token);
    return go_on && stats.generated_tokens < options.max_new &&
           std::find(options.stop_ids.begin(), options.stop_ids.end(), token) == options.stop_ids.end();
  };

  // Prefill: the prompt through the main model and, when speculating, all but its last
  // position through the MTP module (that one needs the first generated token).
  auto start = Clock::now();
  model_.forward(prompt.data(), n, cache_, speculate ? hidden_.data() : nullptr, logits_.data(), 1);
  if (speculate && n > 1) model_.forward_mtp(prompt.data() + 1, hidden_.data(), n - 1, mtp_cache_, nullptr, 0);
  const int32_t first = options.max_new > 0 ? sampler.sample(logits_.data(), history_) : -1;
  stats.prefill_seconds = seconds_since(start);
  if (options.max_new == 0) return stats;

  start = Clock::now();
  // Drafts are drawn from their own stream: reusing the verifier's would correlate each
  // draft with the uniform that judges it, which the acceptance rule must not see.
  SamplingParams draft_params = sampler.params();
  draft_params.seed ^= 0x9e3779b97f4a7c15ull;
  Sampler draft_sampler(draft_params, c.vocab_size);
  const float* pending_hidden = speculate ? hidden_.data() + (n - 1) * d : nullptr;  // MTP rows not yet run
  int64_t pending = 1;
  bool go_on = commit(first);
  while (go_on) {
    const int64_t drafts = std::min(options.drafts, options.max_new - stats.generated_tokens - 1);
    if (drafts > 0) {
      go_on = speculative_step(drafts, pending_hidden, pending, sampler, draft_sampler, stats, commit);
    } else {
      model_.forward(&history_.back(), 1, cache_, nullptr, logits_.data());
      ++stats.decode_passes;
      go_on = commit(sampler.sample(logits_.data(), history_));
    }
  }
  // A stop inside an accepted run of drafts leaves positions past the last token cached.
  const int64_t consumed = static_cast<int64_t>(history_.size()) - 1;
  cache_.truncate(std::min(cache_.length(), consumed));
  if (model_.has_mtp()) mtp_cache_.truncate(std::min(mtp_cache_.length(), consumed - 1));
  stats.decode_seconds = seconds_since(start);
  return stats;
}

// One draft-and-verify step. On entry history_ ends with the committed token that no pass
// has consumed yet (position L = cache length); the MTP module still has to run the
// `pending` rows whose main-model hidden states start at pending_hidden.
bool Generator::speculative_step(int64_t drafts, const float*& pending_hidden, int64_t& pending, Sampler& sampler,
                                 Sampler& draft_sampler, GenerationStats& stats,
                                 const std::function<bool(int32_t)>& commit) {
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size;
  const int64_t L = cache_.length();

  // Draft 1: the pending MTP rows (hidden state at i with token i + 1); the last one,
  // position L - 1 with the newest token, predicts the token at L + 1.
  const int64_t first_row = mtp_cache_.length();
  model_.forward_mtp(&history_[static_cast<size_t>(first_row + 1)], pending_hidden, pending, mtp_cache_,
                     mtp_logits_.data(), 1, mtp_hidden_.data());
  // Drafts 2..: the MTP module's own hidden state stands in for the main model's.
  const float* mtp_hidden = mtp_hidden_.data() + (pending - 1) * d;
  float* spare = mtp_hidden_.data() + (max_drafts_ + 1) * d;
  for (int64_t j = 0; j < drafts; ++j) {
    if (j > 0) {
      float* out = mtp_hidden == spare ? mtp_hidden_.data() : spare;
      model_.forward_mtp(&history_.back(), mtp_hidden, 1, mtp_cache_, mtp_logits_.data(), 1, out);
      mtp_hidden = out;
    }
    std::vector<float>& q = draft_probs_[static_cast<size_t>(j)];
    draft_sampler.distribution(mtp_logits_.data(), history_, q);
    history_.push_back(draft_sampler.draw(q));
  }

  // Verify: the newest committed token and the drafts in one pass (logits row j judges draft j + 1).
  model_.forward(&history_[static_cast<size_t>(L)], drafts + 1, cache_, hidden_.data(), logits_.data());
  ++stats.decode_passes;
  stats.drafted += drafts;
  const std::span<const int32_t> all(history_);
  int64_t accepted = 0;
  int32_t next = -1;
  for (; accepted < drafts; ++accepted) {
    const size_t committed = static_cast<size_t>(L + 1 + accepted);
    sampler.distribution(&logits_[static_cast<size_t>(accepted * V)], all.first(committed), target_probs_);
    const DraftVerdict verdict = verify_draft(target_probs_, draft_probs_[static_cast<size_t>(accepted)],
                                              history_[committed], sampler, residual_);
    if (!verdict.accepted) {
      next = verdict.token;
      break;
    }
  }
  if (accepted == drafts)  // every draft passed: the last position gives one more token
    next = sampler.sample(&logits_[static_cast<size_t>(drafts * V)], all.first(static_cast<size_t>(L + 1 + drafts)));
  stats.accepted += accepted;

  // Roll back to the committed tokens: the main cache keeps the newest token and the
  // accepted drafts; the MTP cache drops the rows drafted from its own hidden states.
  cache_.truncate(L + 1 + accepted);
  mtp_cache_.truncate(L);
  pending_hidden = hidden_.data();
  pending = accepted + 1;

  accepted_drafts_.assign(history_.begin() + L + 1, history_.begin() + L + 1 + accepted);
  history_.resize(static_cast<size_t>(L + 1));
  for (int32_t token : accepted_drafts_)
    if (!commit(token)) return false;
  return commit(next);
}

}  // namespace dsv3
