#include "infer/batch_generator.h"

#include <algorithm>

#include "base/error.h"
#include "infer/speculative.h"

namespace dsv3 {

namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

BatchGenerator::Slot::Slot(const Model& model, int64_t context, int64_t max_drafts)
    : cache(model.make_cache(context)), mtp_cache(model.has_mtp() ? model.make_mtp_cache(context) : KvCache(0, 0, 0)) {
  const size_t d = static_cast<size_t>(model.config().hidden_size), V = static_cast<size_t>(model.config().vocab_size);
  history.reserve(static_cast<size_t>(context));
  if (max_drafts > 0) {
    pending_hidden.resize(static_cast<size_t>(max_drafts + 1) * d);
    mtp_hidden.resize(d);
    draft_probs.assign(static_cast<size_t>(max_drafts), std::vector<float>(V));
  }
}

BatchGenerator::BatchGenerator(Model& model, int64_t slots, int64_t context, int64_t max_drafts)
    : model_(model), context_(context), max_drafts_(max_drafts) {
  const ModelConfig& c = model.config();
  if (slots < 1) fail("the number of sequence slots must be >= 1, got ", slots);
  if (context < 1 || context > c.max_position_embeddings)
    fail("the context must be in [1, ", c.max_position_embeddings, "] (max_position_embeddings), got ", context);
  if (max_drafts < 0) fail("the number of drafts must be >= 0, got ", max_drafts);
  if (max_drafts > 0 && !model.has_mtp())
    fail("speculative decoding needs an MTP module, and this model has none (num_nextn_predict_layers is 0)");
  const size_t d = static_cast<size_t>(c.hidden_size), V = static_cast<size_t>(c.vocab_size);
  const size_t rows = static_cast<size_t>(slots * (max_drafts + 1));  // a decoding step's rows at most
  slots_.reserve(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) slots_.emplace_back(model, context, max_drafts);
  slices_.reserve(static_cast<size_t>(slots));
  in_pass_.reserve(static_cast<size_t>(slots));
  drafting_.reserve(static_cast<size_t>(slots));
  hidden_.resize(rows * d);
  logits_.resize(rows * V);
  target_probs_.reserve(V);
  residual_.reserve(V);
  if (max_drafts > 0) {
    mtp_logits_.resize(static_cast<size_t>(slots) * V);
    mtp_hidden_.resize(rows * d);
  }
}

int64_t BatchGenerator::free_slot() const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].phase == Phase::kFree) return static_cast<int64_t>(i);
  return -1;
}

bool BatchGenerator::busy() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.phase != Phase::kFree; });
}

int64_t BatchGenerator::start(std::span<const int32_t> prompt, const GenerationOptions& options, Sampler& sampler,
                              TokenSink sink) {
  const ModelConfig& c = model_.config();
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n == 0) fail("the prompt is empty");
  for (int32_t id : prompt)
    if (id < 0 || id >= c.vocab_size) fail("token id ", id, " is outside the vocabulary [0, ", c.vocab_size, ")");
  check_fits(n, options.max_new);
  if (options.drafts < 0 || options.drafts > max_drafts_)
    fail("drafts per step must be in [0, ", max_drafts_, "], got ", options.drafts);
  const int64_t index = free_slot();
  if (index < 0) fail("all ", slots(), " sequence slots are busy");

  Slot& s = slots_[static_cast<size_t>(index)];
  s.phase = Phase::kPrefill;
  s.cache.truncate(0);
  s.mtp_cache.truncate(0);
  s.history.assign(prompt.begin(), prompt.end());
  s.options = options;
  s.sampler = &sampler;
  // Drafts are drawn from their own stream: reusing the verifier's would correlate each
  // draft with the uniform that judges it, which the acceptance rule must not see.
  if (options.drafts > 0) {
    SamplingParams draft_params = sampler.params();
    draft_params.seed ^= 0x9e3779b97f4a7c15ull;
    s.draft_sampler.emplace(draft_params, c.vocab_size);
  }
  s.sink = std::move(sink);
  s.stats = GenerationStats{};
  s.stats.prompt_tokens = n;
  s.pending = 0;
  return index;
}

void BatchGenerator::check_fits(int64_t n, int64_t max_new) const {
  if (max_new < 0) fail("the number of tokens to generate must be >= 0, got ", max_new);
  if (n + max_new > context_)
    fail("the prompt's ", n, " tokens + ", max_new, " new tokens exceed the context of ", context_,
         context_ == model_.config().max_position_embeddings ? " (max_position_embeddings)" : "");
}

void BatchGenerator::cancel(int64_t slot) {
  Slot& s = slots_[static_cast<size_t>(slot)];
  if (s.phase == Phase::kFree) return;
  s.stats.finish = FinishReason::kCancelled;
  finish(s);
}

void BatchGenerator::step() {
  const ModelConfig& c = model_.config();
  const int64_t d = c.hidden_size, V = c.vocab_size;
  in_pass_.clear();
  drafting_.clear();
  for (Slot& s : slots_) {
    if (s.phase == Phase::kFree) continue;
    in_pass_.push_back(&s);
    s.drafts = 0;
    if (s.phase == Phase::kDecode) {
      s.drafts = std::min(s.options.drafts, s.options.max_new - s.stats.generated_tokens - 1);
      if (s.drafts > 0) drafting_.push_back(&s);
    }
  }
  if (in_pass_.empty()) return;
  draft(drafting_);

  // The main pass: prompts of new sequences (logits of their last position only), and the
  // newest token plus the drafts of the others.
  const auto pass_start = Clock::now();
  slices_.clear();
  int64_t rows = 0, logit_rows = 0;
  for (Slot* s : in_pass_) {
    s->first_row = rows;
    s->first_logit_row = logit_rows;
    if (s->phase == Phase::kPrefill) {
      slices_.push_back({s->history.data(), static_cast<int64_t>(s->history.size()), &s->cache, 1});
      logit_rows += 1;
    } else {
      slices_.push_back({&s->history[static_cast<size_t>(s->cache.length())], s->drafts + 1, &s->cache, -1});
      logit_rows += s->drafts + 1;
    }
    rows += slices_.back().count;
  }
  if (hidden_.size() < static_cast<size_t>(rows * d)) hidden_.resize(static_cast<size_t>(rows * d));  // long prompts
  model_.forward(slices_, hidden_.data(), logits_.data());

  // New speculating sequences: all but the last prompt position through the MTP module
  // (that one needs the first generated token, and waits as a pending row).
  slices_.clear();
  for (Slot* s : in_pass_) {
    const int64_t n = static_cast<int64_t>(s->history.size());
    if (s->phase == Phase::kPrefill && s->options.drafts > 0 && n > 1)
      slices_.push_back({s->history.data() + 1, n - 1, &s->mtp_cache, 0, &hidden_[static_cast<size_t>(s->first_row * d)]});
  }
  if (!slices_.empty()) model_.forward_mtp(slices_, nullptr);

  for (Slot* s : in_pass_) {
    const float* logits = &logits_[static_cast<size_t>(s->first_logit_row * V)];
    if (s->phase == Phase::kPrefill) {
      const int64_t n = static_cast<int64_t>(s->history.size());
      s->phase = Phase::kDecode;
      if (s->options.max_new == 0) {
        s->stats.prefill_seconds = seconds_between(pass_start, Clock::now());
        s->stats.finish = FinishReason::kLength;
        finish(*s);
        continue;
      }
      s->history.push_back(s->sampler->sample(logits, s->history));
      if (s->options.drafts > 0) {
        std::copy_n(&hidden_[static_cast<size_t>((s->first_row + n - 1) * d)], d, s->pending_hidden.data());
        s->pending = 1;
      }
      s->decode_start = Clock::now();
      s->stats.prefill_seconds = seconds_between(pass_start, s->decode_start);
      commit(*s, s->history.size() - 1);
    } else if (s->drafts > 0) {
      ++s->stats.decode_passes;
      verify_and_commit(*s);
    } else {
      ++s->stats.decode_passes;
      s->history.push_back(s->sampler->sample(logits, s->history));
      commit(*s, s->history.size() - 1);
    }
  }
}

// Draft tokens for the sequences that speculate this step, appended to their histories.
// On entry each one's history ends with its newest token, not yet consumed by any pass
// (position L = cache length), and its MTP module still has the `pending` rows to run.
void BatchGenerator::draft(std::span<Slot*> drafting) {
  if (drafting.empty()) return;
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size;
  // Draft 1: the pending MTP rows (hidden state at i with token i + 1); the last one,
  // position L - 1 with the newest token, predicts the token at L + 1.
  slices_.clear();
  for (Slot* s : drafting)
    slices_.push_back({&s->history[static_cast<size_t>(s->mtp_cache.length() + 1)], s->pending, &s->mtp_cache, 1,
                       s->pending_hidden.data()});
  model_.forward_mtp(slices_, mtp_logits_.data(), mtp_hidden_.data());
  int64_t row = 0;
  for (size_t k = 0; k < drafting.size(); ++k) {
    Slot& s = *drafting[k];
    row += s.pending;
    std::copy_n(&mtp_hidden_[static_cast<size_t>((row - 1) * d)], d, s.mtp_hidden.data());
    s.draft_sampler->distribution(&mtp_logits_[k * static_cast<size_t>(V)], s.history, s.draft_probs[0]);
    s.history.push_back(s.draft_sampler->draw(s.draft_probs[0]));
  }
  // Drafts 2..: the MTP module's own hidden state stands in for the main model's.
  for (int64_t j = 1; j < max_drafts_; ++j) {
    slices_.clear();
    for (Slot* s : drafting)
      if (s->drafts > j) slices_.push_back({&s->history.back(), 1, &s->mtp_cache, 1, s->mtp_hidden.data()});
    if (slices_.empty()) break;
    model_.forward_mtp(slices_, mtp_logits_.data(), mtp_hidden_.data());
    size_t k = 0;
    for (Slot* s : drafting) {
      if (s->drafts <= j) continue;
      std::copy_n(&mtp_hidden_[k * static_cast<size_t>(d)], d, s->mtp_hidden.data());
      std::vector<float>& q = s->draft_probs[static_cast<size_t>(j)];
      s->draft_sampler->distribution(&mtp_logits_[k * static_cast<size_t>(V)], s->history, q);
      s->history.push_back(s->draft_sampler->draw(q));
      ++k;
    }
  }
}

// After the main pass over the newest token and the drafts (logits row j judges draft j + 1).
void BatchGenerator::verify_and_commit(Slot& s) {
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size;
  const int64_t L = s.cache.length() - (s.drafts + 1);
  const float* logits = &logits_[static_cast<size_t>(s.first_logit_row * V)];
  s.stats.drafted += s.drafts;
  const std::span<const int32_t> all(s.history);
  int64_t accepted = 0;
  int32_t next = -1;
  for (; accepted < s.drafts; ++accepted) {
    const size_t committed = static_cast<size_t>(L + 1 + accepted);
    s.sampler->distribution(logits + accepted * V, all.first(committed), target_probs_);
    const DraftVerdict verdict = verify_draft(target_probs_, s.draft_probs[static_cast<size_t>(accepted)],
                                              s.history[committed], *s.sampler, residual_);
    if (!verdict.accepted) {
      next = verdict.token;
      break;
    }
  }
  if (accepted == s.drafts)  // every draft passed: the last position gives one more token
    next = s.sampler->sample(logits + s.drafts * V, all.first(static_cast<size_t>(L + 1 + s.drafts)));
  s.stats.accepted += accepted;

  // Roll back to the committed tokens: the main cache keeps the newest token and the
  // accepted drafts; the MTP cache drops the rows drafted from its own hidden states, and
  // the main model's hidden states of the kept positions wait as its pending rows.
  s.cache.truncate(L + 1 + accepted);
  s.mtp_cache.truncate(L);
  s.pending = accepted + 1;
  std::copy_n(&hidden_[static_cast<size_t>(s.first_row * d)], s.pending * d, s.pending_hidden.data());

  for (int64_t j = 0; j < accepted; ++j)
    if (!commit(s, static_cast<size_t>(L + 1 + j))) return;
  s.history.resize(static_cast<size_t>(L + 1 + accepted));
  s.history.push_back(next);
  commit(s, s.history.size() - 1);
}

bool BatchGenerator::commit(Slot& s, size_t index) {
  const int32_t token = s.history[index];
  ++s.stats.generated_tokens;
  const std::vector<int32_t>& stops = s.options.stop_ids;
  if (!s.sink(token)) {
    s.stats.finish = FinishReason::kSink;
  } else if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    s.stats.finish = FinishReason::kStopToken;
  } else if (s.stats.generated_tokens >= s.options.max_new) {
    s.stats.finish = FinishReason::kLength;
  } else {
    return true;
  }
  s.history.resize(index + 1);
  finish(s);
  return false;
}

void BatchGenerator::finish(Slot& s) {
  if (s.phase == Phase::kDecode && s.stats.generated_tokens > 0)
    s.stats.decode_seconds = seconds_between(s.decode_start, Clock::now());
  // A stop inside an accepted run of drafts leaves positions past the last token cached.
  const int64_t consumed = static_cast<int64_t>(s.history.size()) - 1;
  s.cache.truncate(std::clamp<int64_t>(consumed, 0, s.cache.length()));
  if (model_.has_mtp()) s.mtp_cache.truncate(std::clamp<int64_t>(consumed - 1, 0, s.mtp_cache.length()));
  s.phase = Phase::kFree;
  s.sink = nullptr;
  s.sampler = nullptr;
  s.draft_sampler.reset();
}

}  // namespace dsv3
