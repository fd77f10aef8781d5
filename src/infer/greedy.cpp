#include "infer/greedy.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace dsv3 {

GenerationStats greedy_generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, int32_t stop_id,
                                const std::function<void(int32_t)>& on_token) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n == 0) fail("empty prompt");
  if (n >= c.max_position_embeddings)
    fail("the prompt's ", n, " tokens leave no room in the context of ", c.max_position_embeddings);
  const int64_t capacity = std::min<int64_t>(c.max_position_embeddings, n + max_new);
  KvCache cache = model.make_cache(capacity);
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  using clock = std::chrono::steady_clock;
  GenerationStats stats;
  stats.prompt_tokens = n;

  auto start = clock::now();
  model.forward(prompt.data(), n, cache, nullptr, logits.data());
  stats.prefill_seconds = std::chrono::duration<double>(clock::now() - start).count();
  const float* last = &logits[(n - 1) * c.vocab_size];
  int32_t token = static_cast<int32_t>(std::max_element(last, last + c.vocab_size) - last);

  start = clock::now();
  while (stats.generated_tokens < max_new) {
    on_token(token);
    ++stats.generated_tokens;
    if (token == stop_id || cache.length() >= capacity) break;
    model.forward(&token, 1, cache, nullptr, logits.data());
    token = static_cast<int32_t>(std::max_element(logits.data(), logits.data() + c.vocab_size) - logits.data());
  }
  stats.decode_seconds = std::chrono::duration<double>(clock::now() - start).count();
  return stats;
}

}  // namespace dsv3
