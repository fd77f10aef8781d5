// Choosing the next token from logits: repetition penalty, temperature, top-k, top-p
// (nucleus), min-p, then a seeded draw; temperature 0 is greedy. The transforms apply in
// that order (as vLLM and Hugging Face do: the nucleus is taken after temperature).
// Plain loops over a candidate buffer allocated once, as llama.cpp's samplers.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace dsv3 {

struct SamplingParams {
  float temperature = 0.7f;        // 0: greedy
  int32_t top_k = 0;               // 0: all tokens
  float top_p = 0.95f;             // 1: off
  float min_p = 0.0f;              // keep tokens with p >= min_p * p_max; 0: off
  float repetition_penalty = 1.0f; // > 1 discourages tokens already in the history
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(SamplingParams params, int64_t vocab_size);

  // Draws a token. `history`: the tokens so far (for the repetition penalty).
  int32_t sample(const float* logits, std::span<const int32_t> history);

  // The distribution sample() draws from, as probabilities over the whole vocabulary
  // (zero outside the kept candidates). Greedy gives a one-hot distribution.
  void distribution(const float* logits, std::span<const int32_t> history, std::vector<float>& probs);

  // A uniform draw in [0, 1) and a draw of an index with probability proportional to
  // weights[i] (which need not sum to 1), both from this sampler's seeded generator.
  double uniform();
  int32_t draw(const std::vector<float>& weights);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float value;  // logit, then probability
  };
  // Fills candidates_ with the kept tokens and their probabilities (sorted, descending).
  void prepare(const float* logits, std::span<const int32_t> history);

  SamplingParams params_;
  int32_t vocab_size_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;
  std::vector<float> penalised_;
};

}  // namespace dsv3
