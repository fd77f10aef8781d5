#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace dsv3 {

GenerationStats generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, Sampler& sampler,
                         const std::vector<int32_t>& stop_ids, const std::function<void(int32_t)>& on_token) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n == 0) fail("the prompt is empty");
  if (max_new < 0) fail("the number of tokens to generate must be >= 0, got ", max_new);
  if (n + max_new > c.max_position_embeddings)
    fail("the prompt's ", n, " tokens + ", max_new, " new tokens exceed the model's context of ",
         c.max_position_embeddings, " (max_position_embeddings)");
  KvCache cache = model.make_cache(n + max_new);
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  std::vector<int32_t> history = prompt;
  history.reserve(static_cast<size_t>(n + max_new));
  using clock = std::chrono::steady_clock;
  GenerationStats stats;
  stats.prompt_tokens = n;

  auto start = clock::now();
  model.forward(prompt.data(), n, cache, nullptr, logits.data());
  const float* next_logits = &logits[(n - 1) * c.vocab_size];
  stats.prefill_seconds = std::chrono::duration<double>(clock::now() - start).count();

  start = clock::now();
  while (stats.generated_tokens < max_new) {
    const int32_t token = sampler.sample(next_logits, history);
    history.push_back(token);
    ++stats.generated_tokens;
    on_token(token);
    if (std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end() ||
        stats.generated_tokens == max_new)
      break;
    model.forward(&token, 1, cache, nullptr, logits.data());
    next_logits = logits.data();
  }
  stats.decode_seconds = std::chrono::duration<double>(clock::now() - start).count();
  return stats;
}

}  // namespace dsv3
